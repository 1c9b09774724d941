"""End to end with pip: the example plugin packages installed for real, then seen by the CLI.

Everything runs offline: pip gets ``--no-index --no-deps --no-build-isolation`` and builds with the
setuptools of this environment (the ``test`` extra pins one that can).
"""

from __future__ import annotations

import json
import os
import shutil
import site
import subprocess
import sys
from pathlib import Path

import pytest
from bestiary_testing import BROKEN_DIR, EXAMPLE_DIR, by_name, clean_env

pytestmark = pytest.mark.slow

PIP_ENV = {"PIP_NO_INDEX": "1", "PIP_DISABLE_PIP_VERSION_CHECK": "1", "PIP_NO_INPUT": "1"}
EXAMPLE_ENTRIES = {
    "example:tiny_mlp": "architectures",
    "example:synthetic_blobs": "datasets",
    "example:accuracy": "metrics",
    "example:local": "strategies",
}
BROKEN_ERROR = "import failed: ModuleNotFoundError: No module named 'bestiary_broken_missing_dependency'"


def copy_project(source: Path, into: Path) -> Path:
    """Copy a plugin project so that building it leaves nothing in the source tree."""
    target = into / source.name
    shutil.copytree(source, target, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    return target


def run(args: list[str], **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, env=clean_env(**env), capture_output=True, text=True, timeout=300)


def pip_install_target(project: Path, tmp: Path) -> Path:
    target = tmp / "site"
    result = run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--target",
            str(target),
            str(copy_project(project, tmp)),
        ],
        **PIP_ENV,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return target


@pytest.fixture(scope="session")
def example_site(tmp_path_factory) -> Path:
    return pip_install_target(EXAMPLE_DIR, tmp_path_factory.mktemp("example"))


@pytest.fixture(scope="session")
def broken_site(tmp_path_factory) -> Path:
    return pip_install_target(BROKEN_DIR, tmp_path_factory.mktemp("broken"))


def bestiary(*args: str, sites: list[Path], python: str = sys.executable, **env: str):
    if sites:
        env["PYTHONPATH"] = os.pathsep.join(map(str, sites))
    return run([python, "-m", "bestiary", *args], **env)


def test_installed_example_is_listed(example_site):
    assert (example_site / "bestiary_example-0.3.1.dist-info").is_dir()
    result = bestiary("list", "--json", sites=[example_site])
    assert result.returncode == 0, result.stderr
    entries = {e["qualified_name"]: e for e in json.loads(result.stdout) if e["plugin"] == "example"}
    assert {q: e["kind"] for q, e in entries.items()} == EXAMPLE_ENTRIES
    for e in entries.values():
        assert (e["distribution"], e["version"]) == ("bestiary-example", "0.3.1")
    assert entries["example:tiny_mlp"]["task"] == "tabular-classification"
    assert entries["example:tiny_mlp"]["factory"] == "bestiary_example.models:build_mlp"

    result = bestiary("list", "architectures", "example:*", "--json", sites=[example_site])
    assert [e["qualified_name"] for e in json.loads(result.stdout)] == ["example:tiny_mlp"]


def test_installed_example_plugin_record(example_site):
    result = bestiary("--strict-plugins", "plugins", "--json", sites=[example_site])
    assert result.returncode == 0, result.stderr
    example = by_name(json.loads(result.stdout))["example"]
    assert {k: example[k] for k in ("module", "distribution", "version", "source", "status", "error")} == {
        "module": "bestiary_example.plugin",
        "distribution": "bestiary-example",
        "version": "0.3.1",
        "source": "entrypoint",
        "status": "ok",
        "error": None,
    }
    assert example["entries"] == {"architectures": 1, "datasets": 1, "metrics": 1, "strategies": 1}
    assert example["hooks"] == [
        "register_architectures",
        "register_datasets",
        "register_metrics",
        "register_strategies",
    ]


def test_installed_example_builds(example_site):
    pytest.importorskip("torch")
    code = (
        "import bestiary, torch; "
        "model = bestiary.build('architectures', 'example:tiny_mlp', num_classes=5); "
        "print(tuple(model(torch.zeros(2, 8)).shape))"
    )
    result = run([sys.executable, "-c", code], PYTHONPATH=str(example_site))
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "(2, 5)"


def test_broken_plugin_is_reported_and_skipped(example_site, broken_site):
    sites = [example_site, broken_site]
    result = bestiary("plugins", "--json", sites=sites)
    assert result.returncode == 0, result.stderr
    records = by_name(json.loads(result.stdout))
    broken = records["broken"]
    assert {k: broken[k] for k in ("module", "distribution", "version", "source", "status", "error")} == {
        "module": "bestiary_broken.plugin",
        "distribution": "bestiary-broken",
        "version": "0.0.1",
        "source": "entrypoint",
        "status": "failed",
        "error": BROKEN_ERROR,
    }
    assert "bestiary_broken/plugin.py" in broken["traceback"]
    assert records["example"]["status"] == "ok"

    listed = bestiary("list", "--json", sites=sites)
    assert listed.returncode == 0
    assert EXAMPLE_ENTRIES.keys() <= {e["qualified_name"] for e in json.loads(listed.stdout)}
    assert "bestiary: plugin 'broken' (bestiary-broken 0.0.1) skipped" in listed.stderr


def test_strict_mode_fails_on_the_broken_plugin(example_site, broken_site):
    sites = [example_site, broken_site]
    result = bestiary("--strict-plugins", "list", "--json", sites=sites)
    assert result.returncode == 1
    assert result.stdout == ""
    assert f"Error: 1 plugin(s) failed to load: plugin 'broken' (bestiary-broken 0.0.1): {BROKEN_ERROR}." in (
        result.stderr
    )
    assert bestiary("list", sites=sites, BESTIARY_STRICT_PLUGINS="1").returncode == 1
    unblocked = bestiary("--strict-plugins", "list", sites=sites, BESTIARY_DISABLE_PLUGINS="broken")
    assert unblocked.returncode == 0, unblocked.stderr


# -- bestiary plugins install / uninstall, into a fresh virtual environment ------------------


@pytest.fixture
def venv(tmp_path) -> Path:
    """A new virtual environment that sees this one's packages (bestiary, pip, setuptools) through
    a .pth file, so nothing needs downloading; what it installs lands in its own site-packages."""
    root = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(root)], check=True, timeout=120)
    python = root / "bin" / "python"
    purelib = run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"]
    ).stdout.strip()
    parents = [p for p in site.getsitepackages() if Path(p).is_dir()]
    # addsitedir also runs the .pth files there (an editable install of bestiary is one).
    lines = [f"import site; site.addsitedir({p!r})" for p in parents]
    (Path(purelib) / "_parent_environment.pth").write_text("\n".join(lines) + "\n")
    return root


def test_plugins_install_and_uninstall(venv, tmp_path):
    python = str(venv / "bin" / "python")
    project = copy_project(EXAMPLE_DIR, tmp_path)

    def example_entries() -> set[str]:
        result = bestiary("list", "--plugin", "example", "--json", sites=[], python=python)
        assert result.returncode == 0, result.stderr
        return {e["qualified_name"] for e in json.loads(result.stdout)}

    assert example_entries() == set()
    installed = bestiary(
        "plugins",
        "install",
        "--no-cache-dir",
        "--no-deps",
        "--no-build-isolation",
        str(project),
        sites=[],
        python=python,
        **PIP_ENV,
    )
    assert installed.returncode == 0, installed.stdout + installed.stderr
    assert "run `bestiary plugins` to check that the plugin loads" in installed.stderr
    assert list(venv.glob("lib/python*/site-packages/bestiary_example-0.3.1.dist-info"))
    assert example_entries() == set(EXAMPLE_ENTRIES)

    removed = bestiary("plugins", "uninstall", "bestiary-example", sites=[], python=python, **PIP_ENV)
    assert removed.returncode == 0, removed.stdout + removed.stderr
    assert not list(venv.glob("lib/python*/site-packages/bestiary_example*"))
    assert example_entries() == set()
    plugins = bestiary("plugins", "--json", sites=[], python=python)
    assert "example" not in by_name(json.loads(plugins.stdout))
