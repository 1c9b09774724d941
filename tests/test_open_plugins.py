"""A third-party plugin adds a kind, a command and a run option, loaded through the real host;
all three work through the CLI, and the option reaches the config.json of a real tiny run."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

import bestiary
from bestiary import hookimpl
from bestiary.cli import main
from bestiary.errors import ConfigError
from bestiary.options import OptionSpec, complete_options, option_value

ENGINE_TESTS = Path(__file__).resolve().parent / "engine"
PLUGINS = ["bestiary_fixtures.widgets", "bestiary_fixtures.gadgets"]


def _runner() -> CliRunner:
    try:  # click < 8.2 mixes stderr into stdout unless told otherwise
        return CliRunner(mix_stderr=False)  # type: ignore[call-arg]
    except TypeError:
        return CliRunner()


@pytest.fixture
def host() -> bestiary.PluginHost:
    """The built-ins, the widget plugins and the toy zoo, as the process-wide host."""
    if str(ENGINE_TESTS) not in sys.path:
        sys.path.insert(0, str(ENGINE_TESTS))
    import toyzoo

    host = bestiary.PluginHost(builtins=[*bestiary.DEFAULT_PLUGINS, *PLUGINS], autoload=False, disabled=())
    host.add_plugin(toyzoo, "toyzoo")
    return bestiary.reset_host(host)


def test_a_plugin_adds_a_kind_that_later_plugins_register_into(host: bestiary.PluginHost) -> None:
    assert {p.name: p.status for p in host.plugins}["gadgets"] == "ok"
    assert "widgets" in host.registry.kinds
    assert sorted(e.qualified_name for e in host.registry.table("widgets")) == ["gadgets:gizmo", "widgets:sprocket"]
    result = _runner().invoke(main, ["list", "widgets", "--json"], prog_name="bestiary")
    assert result.exit_code == 0, result.stderr
    assert sorted(e["name"] for e in json.loads(result.stdout)) == ["gizmo", "sprocket"]
    assert bestiary.get_entry("widget", "gizmo").tags == ("small",)


def test_without_the_declaring_plugin_the_hook_is_unknown() -> None:
    host = bestiary.PluginHost(builtins=["bestiary_fixtures.gadgets"], autoload=False, disabled=())
    (info,) = host.plugins
    assert info.status == "failed"
    assert "unknown hook 'register_widgets'" in (info.error or "")
    assert "widgets" not in host.registry.kinds


def test_a_plugin_adds_a_command(host: bestiary.PluginHost) -> None:
    result = _runner().invoke(main, ["widget-count"], prog_name="bestiary")
    assert result.exit_code == 0, result.stderr
    assert result.stdout == "2 widgets: gizmo, sprocket\n"
    listed = _runner().invoke(main, ["--help"], prog_name="bestiary")
    assert "widget-count" in listed.stdout
    bestiary.reset_host(bestiary.PluginHost(builtins=[], autoload=False))  # the command leaves with its plugin
    gone = _runner().invoke(main, ["widget-count"], prog_name="bestiary")
    assert gone.exit_code == 2 and "no such command 'widget-count'" in gone.stderr


def test_a_plugin_option_reaches_the_config_of_a_real_run(host: bestiary.PluginHost, tmp_path: Path) -> None:
    help_text = _runner().invoke(main, ["train", "--help"], prog_name="bestiary").stdout
    assert "--widget-color" in help_text and "[options.widgets.color]" in help_text
    args = ["train", "toy_mlp", "--dataset", "blobs", "--max-steps", "2", "--batch-size", "16", "--device", "cpu",
            "--runs-root", str(tmp_path), "--quiet", "--json", "--widget-color", "red", "--set", "widgets.count=3"]
    result = _runner().invoke(main, args, prog_name="bestiary")
    assert result.exit_code == 0, result.stderr or result.output
    run_dir = Path(json.loads(result.stdout)["run_dir"])
    saved = json.loads((run_dir / "config.json").read_text())["config"]
    assert saved["options"]["widgets"] == {"color": "red", "count": 3}


def test_defaults_are_filled_and_unknown_keys_fail_with_close_matches(host: bestiary.PluginHost,
                                                                        tmp_path: Path) -> None:
    from bestiary.cli.options import build_config

    config_file = tmp_path / "run.toml"
    config_file.write_text('arch = "toy_mlp"\ndataset = "blobs"\n[options.widgets]\ncount = 5\n')
    cfg = build_config(None, {"config_file": str(config_file), "sets": ()})
    assert cfg.options["widgets"] == {"color": "blue", "count": 5}
    assert option_value(cfg, "widgets", "color") == "blue"
    with pytest.raises(ConfigError, match=r"unknown option widgets.colour. Did you mean: color\?"):
        build_config("toy_mlp", {"dataset": "blobs", "sets": ("widgets.colour=red",)})
    with pytest.raises(ConfigError, match=r"no plugin declares the options table 'widget'. Did you mean: widgets\?"):
        build_config("toy_mlp", {"dataset": "blobs", "sets": ("options.widget.color=red",)})
    result = _runner().invoke(main, ["train", "toy_mlp", "--dataset", "blobs", "--widget-color", "pink"],
                              prog_name="bestiary")
    assert result.exit_code == 2 and "'pink' is not one of" in result.stderr


def test_option_values_are_coerced_to_the_declared_type() -> None:
    specs = [OptionSpec("steps", "mine", "int", 1), OptionSpec("rate", "mine", "float", None)]
    assert complete_options({"mine": {"steps": "4", "rate": 1}}, specs) == {"mine": {"steps": 4, "rate": 1.0}}
    assert complete_options({}, specs) == {"mine": {"steps": 1}}
    with pytest.raises(ConfigError, match="option mine.steps takes a int, got 'many'"):
        complete_options({"mine": {"steps": "many"}}, specs)


def test_a_plugin_option_reaches_autopilot_trials(tmp_path: Path) -> None:
    """An option declared for autopilot becomes a flag of it, checked and filled in like train's."""
    from bestiary.cli.options import add_plugin_options

    class Scout:
        @hookimpl
        def add_options(self, add):  # type: ignore[no-untyped-def]
            add("depth", type="int", default=2, commands=("autopilot",))

    host = bestiary.PluginHost(builtins=[], autoload=False)
    host.add_plugin(Scout(), name="scout")
    bestiary.reset_host(host)
    command = main.get_command(None, "autopilot")  # type: ignore[arg-type]
    add_plugin_options(command, "autopilot")
    assert "--depth" in [o for p in command.params for o in p.opts]
    result = _runner().invoke(main, ["autopilot", "--dataset", "nothing", "--set", "scout.depth=x"],
                              prog_name="bestiary")
    assert result.exit_code == 2 and "option scout.depth takes a int, got 'x'" in result.stderr


def test_signatures_of_plugin_declared_hooks_are_checked(host: bestiary.PluginHost) -> None:
    class Wrong:
        @hookimpl
        def register_widgets(self, registry):  # type: ignore[no-untyped-def]
            pass

    info = host.add_plugin(Wrong(), name="wrong")
    assert info.status == "failed"
    assert info.error == ("hook 'register_widgets' asks for argument(s) 'registry' that the hookspec does not "
                          "provide (it provides: register)")


def test_core_launch_imports_neither_click_nor_the_cli() -> None:
    """The generic launcher interface serves any front end: click and the CLI stay out of it."""
    import ast

    folder = Path(bestiary.__file__).resolve().parent / "launch"
    found = []
    for path in sorted(folder.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [("." * node.level) + (node.module or "")] if isinstance(node, ast.ImportFrom) else [])
            found += [f"{path.name}: {n}" for n in names
                      if n.split(".")[0] == "click" or n in ("..cli", "bestiary.cli") or n.startswith(("..cli.",
                                                                                                        "bestiary.cli."))]
    assert found == []
