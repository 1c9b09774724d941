"""``bestiary autopilot``: candidates from the registry, a budget, a leaderboard, configs that rerun."""

from __future__ import annotations

import json
import time
import tomllib
from pathlib import Path

import pytest
from click.testing import CliRunner

import bestiary
from bestiary.cli import main
from bestiary.engine.rundir import RunDir
from bestiary.errors import ConfigError
from bestiary.tune import autopilot
from bestiary.tune.autopilot import candidates


def test_candidates_come_from_every_plugin_cheapest_first(toy_host: bestiary.PluginHost) -> None:
    names = [e.name for e in candidates("image-classification", max_candidates=None)]
    assert {"toy_mlp", "toy_cnn", "resnet18"} <= set(names)  # a test plugin's entries with the built-in ones
    assert names.index("resnet18") < names.index("resnet50")
    assert [e.name for e in candidates("image-classification", include=["toy_*"], exclude=["toy_cnn"])] == ["toy_mlp"]

    class Big:
        @bestiary.hookimpl
        def register_architectures(self, register):  # type: ignore[no-untyped-def]
            register("sharded_only", "toyzoo:toy_mlp", task="image-classification", metadata={"min_world_size": 2})

    toy_host.add_plugin(Big(), "big")
    assert "sharded_only" not in [e.name for e in candidates("image-classification", max_candidates=None)]
    with pytest.raises(ConfigError, match="bestiary list architectures --task image-classification"):
        candidates("image-classification", include=["nothing*"])


@pytest.mark.slow
def test_autopilot_classification_within_budget(tmp_path: Path) -> None:
    out = tmp_path / "auto"
    started = time.time()
    res = CliRunner().invoke(main, ["autopilot", "--dataset", "blobs", "--include", "toy_*", "--time-budget", "20s",
                                    "--max-epochs", "3", "--runs-root", str(tmp_path / "runs"), "--out", str(out),
                                    "--set", "batch_size=16", "--json"])
    assert res.exit_code == 0, res.output
    assert time.time() - started < 20 + 30  # the budget, plus evaluating the candidates and the report
    result = json.loads(res.stdout)
    assert result["task"] == "image-classification" and result["metric"] == "accuracy"
    board = {row["arch"]: row for row in result["leaderboard"]}
    assert set(board) == {"toyzoo:toy_mlp", "toyzoo:toy_cnn"}
    assert all(row["trials"] >= 1 for row in board.values()), board  # every candidate had a first look
    best = result["best"]
    assert best is not None and best["status"] == "complete" and best["test_accuracy"] is not None
    assert best["params"] > 0 and best["latency_ms"] > 0 and best["train_time_s"] > 0
    assert bestiary.load_model(result["files"]["best_model"]) is not None
    # every candidate's config reruns with `bestiary train`
    for row in board.values():
        config = tomllib.loads(Path(row["config"]).read_text())
        assert config["arch"] == row["arch"] and config["dataset"] == "blobs"
        run = CliRunner().invoke(main, ["train", "--config", row["config"], "--epochs", "1",
                                        "--run-dir", str(tmp_path / row["arch"].replace(":", "-")), "--quiet"])
        assert run.exit_code == 0, run.output
        rerun = RunDir(tmp_path / row["arch"].replace(":", "-")).read_json("config.json")["config"]
        assert (rerun["lr"], rerun["batch_size"], rerun["model"]) == (config.get("lr"), config["batch_size"], config.get("model", {}))
    assert (out / "leaderboard.csv").exists() and (out / "study" / "leaderboard.csv").exists()


@pytest.mark.slow
def test_autopilot_forecasting(tmp_path: Path) -> None:
    result = autopilot("sine", time_budget=6, include=["toy_linear"], max_epochs=3, runs_root=str(tmp_path / "runs"),
                       out=tmp_path / "auto")
    assert result["task"] == "forecasting"
    assert [row["arch"] for row in result["leaderboard"]] == ["toyzoo:toy_linear"]
    assert result["best"]["status"] == "complete"
    with pytest.raises(ConfigError, match="is for forecasting, not image-classification"):
        autopilot("sine", task="image-classification", time_budget=5)


class _Wide:
    """An architecture whose factory options in the search space have defaults of its entry."""

    @staticmethod
    @bestiary.hookimpl
    def register_architectures(register):  # type: ignore[no-untyped-def]
        register("toy_wide", "toyzoo:toy_mlp", task="image-classification", defaults={"hidden": 24, "dropout": 0.25},
                 search_space={"model.hidden": {"type": "categorical", "choices": [16, 24, 32]},
                               "model.dropout": {"type": "float", "low": 0.0, "high": 0.5},
                               "lr": {"type": "float", "low": 1e-3, "high": 1e-1, "log": True}})


def test_the_first_look_trains_the_entry_defaults(toy_host: bestiary.PluginHost, tmp_path: Path) -> None:
    """A candidate's first look uses the entry's defaults for ``model.*`` parameters the run's
    ``model`` table leaves out, not the lowest value of the range."""
    import optuna

    from bestiary.tune.storage import open_storage

    toy_host.add_plugin(_Wide(), "wide")
    out = tmp_path / "auto"
    autopilot("blobs", time_budget=8, include=["toy_wide"], max_candidates=1, max_epochs=1, out=str(out),
              runs_root=str(tmp_path / "runs"), batch_size=32, device="cpu")
    study = optuna.load_study(study_name="autopilot-blobs", storage=open_storage(None, out / "study.journal"))
    (probe,) = [t for t in study.get_trials(deepcopy=False) if t.user_attrs.get("probe")]
    assert probe.params["wide:toy_wide/model.hidden"] == 24
    assert probe.params["wide:toy_wide/model.dropout"] == 0.25
    config = json.loads((Path(probe.user_attrs["run_dir"]) / "config.json").read_text())
    assert config["config"]["model"] == {"hidden": 24, "dropout": 0.25}


def _plan_and_phases(stderr: str) -> None:
    assert "autopilot plan for" in stderr
    for phase in ("timing", "first looks", "references", "search", "report"):
        assert f"  {phase} " in stderr, stderr
    assert "autopilot time per phase: timing" in stderr


@pytest.mark.slow
def test_a_budget_too_small_for_one_epoch_fails_with_what_it_needs(tmp_path: Path) -> None:
    """Timing and the first looks cannot use the whole budget and still end in success: without a
    model trained to completion the command exits 1 with one line naming the budget it needs."""
    from bestiary.tune.budget import parse_duration

    out = tmp_path / "auto"
    # a million samples: one epoch takes many times the 2 s budget even on a fast machine
    res = CliRunner().invoke(main, ["autopilot", "--dataset", "blobs", "--include", "toy_*", "--time-budget", "2s",
                                    "--max-epochs", "3", "--runs-root", str(tmp_path / "runs"), "--out", str(out),
                                    "--set", "batch_size=16", "--set", "data.n=1000000"])
    assert res.exit_code == 1, res.output
    _plan_and_phases(res.stderr)
    (line,) = [x for x in res.stderr.splitlines() if x.startswith("Error:")]
    assert "no candidate was trained to completion within 2s" in line
    needed = line.split("--time-budget ")[1].split()[0]
    assert parse_duration(needed) > 2
    assert not (out / "best_model").exists() and (out / "leaderboard.csv").exists()


@pytest.mark.slow
@pytest.mark.parametrize("budget", ["3s", "6s"])
def test_a_tiny_budget_gives_a_model_or_exit_1(tmp_path: Path, budget: str) -> None:
    """Whatever the machine's speed: a completed best model, or exit 1 with the budget needed."""
    out = tmp_path / "auto"
    res = CliRunner().invoke(main, ["autopilot", "--dataset", "blobs", "--include", "toy_*", "--time-budget", budget,
                                    "--max-epochs", "9", "--runs-root", str(tmp_path / "runs"), "--out", str(out),
                                    "--set", "batch_size=16", "--json"])
    _plan_and_phases(res.stderr)
    if res.exit_code == 0:
        result = json.loads(res.stdout)
        assert result["best"]["status"] == "complete"
        assert bestiary.load_model(result["files"]["best_model"]) is not None
        assert set(result["phases"]) == {"timing", "first looks", "references", "search", "report"}
    else:
        assert res.exit_code == 1, res.output
        assert "--time-budget" in res.stderr.splitlines()[-1] and not (out / "best_model").exists()
