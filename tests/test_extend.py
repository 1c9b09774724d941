"""The public plugin API, ``bestiary.extend``: every name it promises resolves, the docs list each
one, and importing it (with the light names) costs neither torch nor click."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from bestiary_testing import clean_env

import bestiary.extend as extend

DOCS = Path(__file__).resolve().parents[1] / "docs" / "plugins.md"
LIGHT = ("hookimpl", "hookspec", "Register", "ConfigError", "OptionSpec", "AddOption", "option_value", "Entry",
         "Provenance", "UnknownEntryError", "RESUME_FLAG", "interrupted_exit_code", "metric_direction",
         "SearchSpace", "Launcher", "Job", "LaunchOptions", "parse_duration", "record_job", "Rule", "Finding",
         "fmt", "Suite", "load_suite", "RunConfig", "to_toml", "Topology", "start_run", "get_entry", "__version__")


def test_all_lists_exactly_the_exported_names() -> None:
    assert sorted(extend.__all__) == sorted(extend._EXPORTS)
    assert len(set(extend.__all__)) == len(extend.__all__)
    assert set(extend.__all__) <= set(dir(extend))


@pytest.mark.parametrize("name", extend.__all__)
def test_every_name_resolves_to_the_object_it_names(name: str) -> None:
    import importlib

    module, attr = extend._EXPORTS[name]
    value = getattr(extend, name)
    assert value is getattr(importlib.import_module(module, "bestiary"), attr)
    assert getattr(extend, name) is value  # cached after the first lookup


def test_an_unknown_name_says_where_the_api_is_listed() -> None:
    with pytest.raises(AttributeError, match=r"bestiary.extend.__all__"):
        extend.NoSuchThing  # noqa: B018  (the lookup itself is the test)
    with pytest.raises(ImportError):
        from bestiary.extend import NoSuchThing  # noqa: F401


def test_the_plugin_guide_lists_every_name() -> None:
    text = DOCS.read_text()
    section = text.split("## The public API", 1)[1].split("\n## ", 1)[0]
    listed = set(re.findall(r"^\| `([^`]+)`", section, re.M))
    assert listed == set(extend.__all__), (sorted(set(extend.__all__) - listed), sorted(listed - set(extend.__all__)))


def test_light_names_import_neither_torch_nor_click(tmp_path: Path) -> None:
    code = (f"import sys, json\nimport bestiary.extend as e\nfor n in {LIGHT!r}: getattr(e, n)\n"
            "from bestiary.extend import hookimpl, Register, ConfigError, OptionSpec\n"
            "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'click'))))")
    done = subprocess.run([sys.executable, "-c", code], env=clean_env(), cwd=tmp_path, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.splitlines()[-1]) == []


def test_a_heavy_name_imports_its_module_on_first_use(tmp_path: Path) -> None:
    code = ("import sys\nimport bestiary.extend as e\nassert 'torch' not in sys.modules\n"
            "e.Task\nassert 'torch' in sys.modules\nprint(e.Task.__module__)")
    done = subprocess.run([sys.executable, "-c", code], env=clean_env(), cwd=tmp_path, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["bestiary.engine.tasks"]
