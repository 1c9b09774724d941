"""Listing never imports the heavy libraries: ``bestiary list`` and ``bestiary.list_entries()`` in a
fresh process leave torch, timm and gluonts out of ``sys.modules``, and do not even try to import
them (so the check means something where they are not installed)."""

from __future__ import annotations

import json
import subprocess
import sys
import tomllib

import pytest
from bestiary_testing import EXAMPLE_DIR, FIXTURES_DIR, clean_env, write_dist

HEAVY = ("torch", "timm", "gluonts")

PRELUDE = f"""
import json, sys

HEAVY = {HEAVY!r}
attempts = []


class Recorder:
    # Sees every import that reaches the path finders, including failed and optional ones.
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in HEAVY:
            attempts.append(name)
        return None


sys.meta_path.insert(0, Recorder())


def report(**extra):
    loaded = sorted(m for m in sys.modules if m.split(".")[0] in HEAVY)
    print("REPORT=" + json.dumps({{"loaded": loaded, "attempts": sorted(set(attempts)), **extra}}))
"""

CLI = """
from bestiary.cli import main

for args in (["list", "--json"], ["list"], ["list", "architectures", "*mlp", "--json"],
             ["info", "example:tiny_mlp", "--json"], ["plugins", "--json"], ["plugins"]):
    main(args, standalone_mode=False)
report()
"""

API = """
import bestiary

imported_plugin = "bestiary_example.plugin" in sys.modules
entries = bestiary.list_entries()
for kind in bestiary.kinds():
    bestiary.list_entries(kind)
entry = bestiary.get_entry("architectures", "example:tiny_mlp")
report(
    imported_plugin_on_import=imported_plugin,
    entries=[e.qualified_name for e in entries],
    plugins={p.name: p.status for p in bestiary.list_plugins()},
)
"""


@pytest.fixture
def env(site):
    """The example plugin visible as an installed distribution, plus the fixture plugins."""
    project = tomllib.loads((EXAMPLE_DIR / "pyproject.toml").read_text())["project"]
    write_dist(site, project["name"], project["version"], project["entry-points"]["bestiary"])
    return clean_env(
        PYTHONPATH=f"{site}:{EXAMPLE_DIR}:{FIXTURES_DIR}",
        BESTIARY_PLUGINS="alpha=bestiary_fixtures.alpha,beta=bestiary_fixtures.beta",
    )


def run(code: str, env: dict[str, str], cwd) -> dict:
    result = subprocess.run(
        [sys.executable, "-c", PRELUDE + code], env=env, cwd=cwd, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    line = [line for line in result.stdout.splitlines() if line.startswith("REPORT=")][-1]
    return json.loads(line.removeprefix("REPORT="))


def test_cli_listing_imports_no_heavy_library(env, tmp_path):
    report = run(CLI, env, tmp_path)
    assert report == {"loaded": [], "attempts": []}


def test_api_listing_imports_no_heavy_library(env, tmp_path):
    report = run(API, env, tmp_path)
    assert (report["loaded"], report["attempts"]) == ([], [])
    # Loading waited for the first lookup, and everything did load: the check is not vacuous.
    assert report["imported_plugin_on_import"] is False
    assert {
        "example:tiny_mlp",
        "example:synthetic_blobs",
        "example:accuracy",
        "example:local",
        "alpha:alpha_net",
        "beta:beta_net",
    } <= set(report["entries"])
    assert set(report["plugins"].values()) == {"ok"}, report["plugins"]
