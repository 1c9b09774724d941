"""The debugger's run options: declared by its plugin in ``[options.debugger]``, given as before
(``--rules``, ``--debug-every``, the old top-level keys of config files and saved runs), and gone
with the plugin when it is blocked. Real runs of a tiny model, real run directories."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

import bestiary
from bestiary import hookimpl
from bestiary.errors import ConfigError

HERE = Path(__file__).resolve().parent
for folder in (HERE, HERE.parent / "engine"):
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))

import debugzoo
import toyzoo


def make_host(*extra: tuple[object, str], disabled: tuple[str, ...] = ()) -> bestiary.PluginHost:
    host = bestiary.PluginHost(autoload=False, disabled=("tensorboard", *disabled))
    for plugin, name in ((toyzoo, "toyzoo"), (debugzoo, "debugzoo"), *extra):
        assert host.add_plugin(plugin, name).status == "ok"
    return host


def cli(*args: str) -> Any:
    from bestiary.cli import main

    return CliRunner().invoke(main, list(args), prog_name="bestiary")


def test_the_plugin_declares_the_options_and_the_config_has_no_debugger_fields() -> None:
    from bestiary.engine.config import RunConfig

    specs = {s.name: s for s in make_host().options() if s.table == "debugger"}
    assert {n: (s.type, s.commands, s.default, s.plugin) for n, s in specs.items()} == {
        "rules": ("str", ("train", "tune"), None, "debugger"),
        "debug_every": ("int", ("train", "tune"), None, "debugger"),
        "rule_options": ("dict", (), None, "debugger"),
    }
    assert not {"rules", "debug_every", "rule_options"} & {f.name for f in dataclasses.fields(RunConfig)}
    base = {"arch": "toy_mlp", "dataset": "blobs"}
    unused = RunConfig.from_dict({**base, "rules": None, "debug_every": 50, "rule_options": {}})  # old config.json
    assert unused.options == {"debugger": {"debug_every": 50}}
    both = RunConfig.from_dict({**base, "rules": "all", "options": {"debugger": {"rules": "default"}}})
    assert both.options == {"debugger": {"rules": "default"}}  # the table wins over the old key


def test_old_and_new_forms_of_a_config_give_the_same_options(tmp_path: Path) -> None:
    from bestiary.cli.options import build_config

    bestiary.reset_host(make_host())  # the conftest restores the process-wide host afterwards
    old = tmp_path / "old.toml"
    old.write_text('arch = "toy_mlp"\ndataset = "blobs"\nrules = "default"\ndebug_every = 20\n'
                   '[rule_options.dead_relu]\nthreshold = 0.8\n')
    new = tmp_path / "new.toml"
    new.write_text('arch = "toy_mlp"\ndataset = "blobs"\n[options.debugger]\nrules = "default"\ndebug_every = 20\n'
                   '[options.debugger.rule_options.dead_relu]\nthreshold = 0.8\n')
    expected = {"debugger": {"rules": "default", "debug_every": 20, "rule_options": {"dead_relu": {"threshold": 0.8}}}}
    assert build_config(None, {"config_file": str(old), "sets": ()}).options == expected
    assert build_config(None, {"config_file": str(new), "sets": ()}).options == expected
    sets = ("rules=default", "debug_every=20", "rule_options.dead_relu.threshold=0.8")
    assert build_config("toy_mlp", {"dataset": "blobs", "sets": sets}).options == expected
    sets = ("debugger.rules=default", "debugger.debug_every=20", "debugger.rule_options.dead_relu.threshold=0.8")
    assert build_config("toy_mlp", {"dataset": "blobs", "sets": sets}).options == expected
    flags = {"dataset": "blobs", "sets": ("debugger.rules=all",), "opt__debugger__rules": "default"}
    assert build_config("toy_mlp", flags).options == {"debugger": {"rules": "all"}}  # --set wins over the flag
    with pytest.raises(ConfigError, match=r"option debugger.rule_options takes a dict, got 3 "
                                          r"\(--set debugger.rule_options.KEY=VALUE\)"):
        build_config("toy_mlp", {"dataset": "blobs", "sets": ("debugger.rule_options=3",)})


def test_a_python_config_is_checked_by_the_plugin(tmp_path: Path) -> None:
    from bestiary.engine.config import RunConfig
    from bestiary.engine.trainer import train

    base = {"arch": "toy_mlp", "dataset": "blobs", "max_steps": 2, "quiet": True, "runs_root": str(tmp_path)}
    with pytest.raises(ConfigError, match=r"option debugger.debug_every must be an integer >= 1, got 0"):
        train(RunConfig(**base, options={"debugger": {"rules": "default", "debug_every": 0}}), host=make_host())
    with pytest.raises(ConfigError, match="no parameter 'treshold'"):
        train(RunConfig(**base, options={"debugger": {"rules": "dead_relu",
                                                      "rule_options": {"dead_relu": {"treshold": 1}}}}),
              host=make_host())
    assert not tmp_path.joinpath("runs.jsonl").exists() and not any(tmp_path.iterdir())  # refused before building


def test_a_blocked_debugger_takes_its_options_with_it(tmp_path: Path) -> None:
    bestiary.reset_host(make_host(disabled=("debugger",)))
    result = cli("train", "toy_mlp", "--dataset", "blobs", "--rules", "default")
    assert result.exit_code == 2 and "No such option --rules" in result.output.replace("'", "").replace(":", "")
    config = tmp_path / "run.toml"
    for text in ('[options.debugger]\nrules = "default"\n', 'rules = "default"\n'):  # the new form and the old
        config.write_text('arch = "toy_mlp"\ndataset = "blobs"\n' + text)
        result = cli("train", "--config", str(config))
        assert result.exit_code == 2, result.output
        assert ("the options table 'debugger' belongs to plugin 'debugger' (bestiary " in result.output
                and "which is not loaded: it is blocked (BESTIARY_DISABLE_PLUGINS); unblock it, or remove "
                    "[options.debugger] (or the old top-level rules, debug_every, rule_options) from the config"
                in result.output)
    assert not (tmp_path / "runs").exists()


def test_the_table_of_a_plugin_that_failed_to_load_names_its_error() -> None:
    from bestiary.options import complete_options

    class Broken:
        @hookimpl
        def on_run_strat(self, run: Any) -> None:  # a typo: no such hook, so the plugin fails to load
            pass

    host = make_host()
    assert host.add_plugin(Broken(), "broken").status == "failed"
    bestiary.reset_host(host)
    with pytest.raises(ConfigError, match=r"the options table 'broken' belongs to plugin 'broken' .*which is not "
                                          r"loaded: it failed to load \(.*on_run_strat.*\); fix it \(see "
                                          r"`bestiary plugins`\), or remove \[options.broken\] from the config$"):
        complete_options({"broken": {"size": 1}})


class Interrupt:
    """Sends this process SIGTERM after optimizer step ``at``: the run checkpoints and ends interrupted."""

    def __init__(self, at: int) -> None:
        self.at = at

    @hookimpl
    def on_step_end(self, run: Any, step: int, metrics: dict[str, float]) -> None:
        if step == self.at:
            os.kill(os.getpid(), signal.SIGTERM)


def to_old_shape(run_dir: Path) -> None:
    """Rewrite the run's config.json as it was written before the debugger had its options table."""
    path = run_dir / "config.json"
    saved = json.loads(path.read_text())
    table = saved["config"]["options"].pop("debugger")
    saved["config"].update(rules=table["rules"], debug_every=table["debug_every"], rule_options=table["rule_options"])
    path.write_text(json.dumps(saved, indent=1))


def test_a_run_saved_in_the_old_shape_resumes_and_replays_with_its_rules(tmp_path: Path) -> None:
    from bestiary.engine.config import RunConfig
    from bestiary.engine.trainer import train

    run_dir = tmp_path / "old"
    debugger = {"rules": "dead_relu,vanishing_gradient", "debug_every": 3,
                "rule_options": {"dead_relu": {"threshold": 0.9}}}
    config = RunConfig(arch="dead_relu_mlp", dataset="blobs", batch_size=16, epochs=2, max_steps=12, log_every=1,
                       checkpoint_every=6, quiet=True, run_dir=str(run_dir), options={"debugger": debugger})
    summary = train(config, host=make_host((Interrupt(6), "interrupt")))
    assert summary["status"] == "interrupted" and summary["steps"] == 6
    to_old_shape(run_dir)
    assert "rules" in json.loads((run_dir / "config.json").read_text())["config"]

    bestiary.reset_host(make_host())
    result = cli("train", "--resume", str(run_dir), "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout[result.stdout.index("{"):])["status"] == "completed"
    steps = [json.loads(line)["step"] for line in (run_dir / "debug" / "stats.jsonl").read_text().splitlines()]
    assert steps == [1, 3, 6, 9, 12]  # collection went on after the resume, every 3 steps as saved
    info = json.loads((run_dir / "debug" / "info.json").read_text())
    assert info["every"] == 3 and info["rules"]["dead_relu"]["threshold"] == 0.9
    assert set(info["rules"]) == {"dead_relu", "vanishing_gradient"}

    to_old_shape_again = json.loads((run_dir / "config.json").read_text())["config"]
    assert to_old_shape_again["options"]["debugger"] == debugger  # the resumed run saved the new shape
    to_old_shape(run_dir)
    result = cli("debug", str(run_dir), "--set", "dead_relu.patience=1")
    assert result.exit_code == 0, result.output
    assert "debugger: 2 rules checked over 5 collections, 2 findings (2 warnings)" in result.output
