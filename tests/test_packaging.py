"""The wheel: everything lives under ``bestiary/``, every package folder is shipped, and the
installed wheel imports and lists (not only the editable install the developers use)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from bestiary_testing import REPO_ROOT, clean_env

pytestmark = pytest.mark.slow

#: Source folder -> the import name it is installed under (pyproject.toml's package-dir).
MAPPED = {
    "core": "bestiary",
    "registry": "bestiary.registry",
    "plugins": "bestiary.plugins",
    "benchmarks": "bestiary.benchmarks",
}
TOP_LEVEL_SKIP = {".git", "build", "dist", ".pytest_cache", "runs", ".venv", "tests"}


def ignore(folder: str, contents: list[str]) -> set[str]:
    """What the copy leaves out: build leftovers anywhere, and top-level folders no wheel needs."""
    skip = {c for c in contents if c == "__pycache__" or c.endswith(".egg-info")}
    if Path(folder) == REPO_ROOT:
        skip |= TOP_LEVEL_SKIP & set(contents)
    return skip


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("wheel")
    source = tmp / "src"
    shutil.copytree(REPO_ROOT, source, ignore=ignore)  # a copy: building leaves build/ behind
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "-w",
            str(tmp / "dist"),
            str(source),
        ],
        env=clean_env(PIP_NO_INDEX="1", PIP_DISABLE_PIP_VERSION_CHECK="1"),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    (built,) = (tmp / "dist").glob("bestiary-*.whl")
    return built


@pytest.fixture(scope="module")
def names(wheel) -> list[str]:
    with zipfile.ZipFile(wheel) as archive:
        return archive.namelist()


def source_packages() -> dict[str, Path]:
    """Every folder with an ``__init__.py`` under the mapped folders, by its installed name."""
    packages = {}
    for folder, prefix in MAPPED.items():
        for init in sorted((REPO_ROOT / folder).rglob("__init__.py")):
            parts = init.parent.relative_to(REPO_ROOT / folder).parts
            if "__pycache__" not in parts:
                packages[".".join((prefix, *parts))] = init.parent
    return packages


def test_only_bestiary_at_the_top(names):
    top = {name.split("/")[0] for name in names}
    dist_info = {t for t in top if t.endswith(".dist-info")}
    assert len(dist_info) == 1 and re.fullmatch(r"bestiary-[^-]+\.dist-info", dist_info.pop())
    assert top - {t for t in top if t.endswith(".dist-info")} == {"bestiary"}
    assert not top & {"core", "registry", "plugins", "benchmarks", "tests", "docs"}


def test_every_package_folder_is_shipped(names):
    packages = source_packages()
    assert {
        "bestiary",
        "bestiary.cli",
        "bestiary.registry",
        "bestiary.plugins",
        "bestiary.benchmarks",
    } <= set(packages)
    missing = [p for p in packages if p.replace(".", "/") + "/__init__.py" not in names]
    assert not missing, (
        f"package folders missing from the wheel: {missing}; add them to `packages` in pyproject.toml"
    )


def test_every_module_is_shipped(names):
    for package, folder in source_packages().items():
        for module in folder.glob("*.py"):
            assert f"{package.replace('.', '/')}/{module.name}" in names


def test_typed_marker_and_console_script(wheel, names):
    assert "bestiary/py.typed" in names
    with zipfile.ZipFile(wheel) as archive:
        (entry_points,) = [n for n in names if n.endswith(".dist-info/entry_points.txt")]
        text = archive.read(entry_points).decode()
    assert "[console_scripts]\nbestiary = bestiary.cli:main" in text


def test_installed_wheel_imports_and_lists(wheel, tmp_path):
    target = tmp_path / "site"
    install = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(target), str(wheel)],
        env=clean_env(PIP_NO_INDEX="1", PIP_DISABLE_PIP_VERSION_CHECK="1"),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert install.returncode == 0, install.stdout + install.stderr
    code = (
        "import json, bestiary; "
        "print(json.dumps({'file': bestiary.__file__, "
        "'plugins': {p.name: p.status for p in bestiary.list_plugins()}, "
        "'entries': len(bestiary.list_entries())}))"
    )
    # PYTHONPATH comes before site-packages, so this imports the wheel, not the development install.
    result = subprocess.run(
        [sys.executable, "-c", code],
        env=clean_env(PYTHONPATH=str(target)),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert Path(report["file"]).is_relative_to(target)
    assert set(report["plugins"].values()) <= {"ok"}, report["plugins"]
    assert report["entries"] > 0 or not report["plugins"]
