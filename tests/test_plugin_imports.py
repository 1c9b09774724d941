"""Built-in plugins use bestiary as a third party would: they import ``bestiary`` and
``bestiary.extend`` only (and their own modules), never another part of bestiary."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import bestiary

ROOT = Path(__file__).resolve().parents[1]
#: Folder -> the package it is installed as.
TREES = {ROOT / "plugins": "bestiary.plugins", ROOT / "benchmarks" / "suites": "bestiary.benchmarks.suites"}
ALLOWED = ("bestiary", "bestiary.extend")


def _module_name(path: Path, folder: Path, package: str) -> tuple[str, bool]:
    parts = list(path.relative_to(folder).with_suffix("").parts)
    is_package = parts[-1] == "__init__"
    return ".".join([package, *(parts[:-1] if is_package else parts)]), is_package


def _plugin_of(module: str) -> str:
    """The built-in plugin a module belongs to: the longest plugin package holding it (a module
    outside every plugin, such as the ``bestiary.plugins`` package itself, stands alone)."""
    holders = [p for p in bestiary.DEFAULT_PLUGINS if module == p or module.startswith(p + ".")]
    return max(holders, key=len) if holders else module


def violations(path: Path, module: str, is_package: bool) -> list[str]:
    """``path:line: what`` for every import of bestiary that is neither public nor the plugin's own."""
    plugin = _plugin_of(module)
    here = module.split(".") if is_package else module.split(".")[:-1]
    where = path.relative_to(ROOT) if path.is_relative_to(ROOT) else path
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                if node.level > len(here):
                    found.append(f"{where}:{node.lineno}: a relative import above the bestiary package")
                    continue
                target = ".".join(here[: len(here) - node.level + 1] + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            targets = [target]
            if target == "bestiary":  # `from bestiary import errors` reaches a module, not a public name
                targets = [n.name if n.name in bestiary.__all__ else f"bestiary.{n.name}" for n in node.names]
                targets = ["bestiary" if t in bestiary.__all__ else t for t in targets]
        elif isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        else:
            continue
        for target in targets:
            mine = target == plugin or target.startswith(plugin + ".")
            if target.split(".")[0] == "bestiary" and target not in ALLOWED and not mine:
                found.append(f"{where}:{node.lineno}: imports {target}; "
                             "use bestiary or bestiary.extend (add what is missing to bestiary.extend)")
    return found


def _modules() -> list[tuple[Path, str, bool]]:
    out = []
    for folder, package in TREES.items():
        for path in sorted(folder.rglob("*.py")):
            out.append((path, *_module_name(path, folder, package)))
    return out


@pytest.mark.parametrize(("path", "module", "is_package"), _modules(), ids=lambda v: v if isinstance(v, str) else None)
def test_builtin_plugins_import_only_the_public_api(path: Path, module: str, is_package: bool) -> None:
    assert violations(path, module, is_package) == []


def test_the_rule_catches_internal_and_escaping_imports(tmp_path: Path) -> None:
    folder = tmp_path / "single"
    folder.mkdir()
    bad = folder / "__init__.py"
    bad.write_text("from bestiary import hookimpl\nfrom bestiary.extend import Task\n"
                   "from bestiary.plugins.single import helpers\nfrom . import helpers\n"
                   "from bestiary.engine.data import Data\nimport bestiary.cli\nfrom .. import vision\n"
                   "from ..vision.models import x\nfrom ... import errors\n")
    found = violations(bad, "bestiary.plugins.single", True)
    assert [f.split(": imports ")[1].split(";")[0] for f in found] == [
        "bestiary.engine.data", "bestiary.cli", "bestiary.plugins", "bestiary.plugins.vision.models", "bestiary.errors"]
    assert found[0].startswith(f"{bad}:5: imports bestiary.engine.data; use bestiary or bestiary.extend")
