"""benchmarks/: the installed library apart from the standalone scripts, which import it and are
imported by nothing."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
SCRIPTS = sorted((BENCHMARKS / "scripts").glob("bench_*.py"))


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = ("." * node.level) + (node.module or "")
            names |= {base} | {f"{base}.{a.name}" for a in node.names}
    return names


def test_the_library_imports_no_script() -> None:
    scripts = {p.stem for p in SCRIPTS}
    assert scripts >= {"bench_trainer", "bench_registry"}
    assert not list(BENCHMARKS.glob("bench_*.py")), "scripts belong in benchmarks/scripts/"
    assert not (BENCHMARKS / "scripts" / "__init__.py").exists()  # not a package: never installed
    for module in BENCHMARKS.rglob("*.py"):
        hits = {n for n in _imports(module) if any(part in scripts for part in n.replace(".", " ").split())}
        assert not hits, f"{module.relative_to(BENCHMARKS)} imports the script(s) {sorted(hits)}"


@pytest.mark.parametrize("script", ["bench_trainer.py", "bench_registry.py"])
def test_scripts_run_from_their_folder(script: str) -> None:
    result = subprocess.run([sys.executable, str(BENCHMARKS / "scripts" / script), "--help"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert script.removesuffix(".py") in result.stdout
