"""``bestiary tune`` and :func:`bestiary.tune.tune`: real optuna studies of real (tiny) runs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

import bestiary
from bestiary.cli import main
from bestiary.engine.index import RunsIndex
from bestiary.engine.rundir import RunDir
from bestiary.tune import tune
from bestiary.tune.study import make_tuner

PNG = b"\x89PNG\r\n\x1a\n"
TOY = {"epochs": 3, "batch_size": 16, "log_every": 1}


def test_a_study_leaves_runs_a_leaderboard_plots_and_the_best_model(tmp_path: Path) -> None:
    root = tmp_path / "runs"
    result = tune("toy_mlp", "blobs", trials=4, runs_root=str(root), sampler_seed=0, **TOY)
    assert [r["state"] for r in result["leaderboard"]].count("complete") + \
        [r["state"] for r in result["leaderboard"]].count("pruned") == 4
    best = result["best"]
    assert set(best["params"]) == {"lr"} and best["values"]["accuracy"] > 0.5
    values = [r["accuracy"] for r in result["leaderboard"] if r["state"] == "complete"]
    assert best["values"]["accuracy"] == max(values)
    # every trial is an ordinary run in the runs index, with its parameters in its config
    rows = {Path(r["path"]).name: r for r in RunsIndex(root).rows(limit=100)}
    for row in result["leaderboard"]:
        run = RunDir(row["run_dir"])
        assert run.path.name in rows
        assert run.read_json("config.json")["config"]["lr"] == row["param:lr"]
    out = Path(result["out"])
    assert (out / "leaderboard.csv").read_text().startswith("trial,state,accuracy")
    assert json.loads((out / "best.json").read_text())["best"]["trial"] == best["trial"]
    assert "lr" in result["importances"]["accuracy"]
    plots = {Path(p).name for p in result["files"]["plots"]}
    assert {"history-accuracy.png", "parallel-accuracy.png", "importances-accuracy.png"} <= plots
    assert all(Path(p).read_bytes().startswith(PNG) for p in result["files"]["plots"])
    model = bestiary.load_model(result["files"]["best_model"])
    reference = bestiary.load_model(best["run_dir"])
    assert all((a == b).all() for a, b in zip(model.state_dict().values(), reference.state_dict().values()))
    # the same call continues the study: four more finished trials, none lost
    again = tune("toy_mlp", "blobs", trials=6, runs_root=str(root), sampler_seed=1, plots=False, **TOY)
    assert len(again["leaderboard"]) == 6 and again["storage"] == result["storage"]


def test_a_pruned_trial_is_a_stopped_run(tmp_path: Path) -> None:
    import optuna

    tuner = make_tuner("toy_mlp", "blobs", runs_root=str(tmp_path), epochs=4, batch_size=16)
    tuner.study.pruner = optuna.pruners.ThresholdPruner(lower=0.999)  # blobs never reach it: always prunes
    tuner.optimize(2)
    trials = tuner.study.get_trials()
    assert [t.state.name for t in trials] == ["PRUNED", "PRUNED"]
    for t in trials:
        assert list(t.intermediate_values) == [1]  # reported after the first epoch, then stopped
        summary = RunDir(t.user_attrs["run_dir"]).read_json("summary.json")
        assert summary["status"] == "stopped" and summary["epochs"] == 1
        assert summary["stop_reason"].startswith("pruned by ThresholdPruner")
    assert "tune" in [p.name for p in bestiary.list_plugins()]


def test_several_objectives_give_a_pareto_front(tmp_path: Path) -> None:
    result = tune("toy_mlp", "blobs", trials=3, metric=["accuracy", "latency_ms"], runs_root=str(tmp_path),
                  sampler_seed=0, **TOY)
    assert result["objectives"] == ["accuracy", "latency_ms"]
    front = result["pareto_front"]
    assert front and all(t["values"]["latency_ms"] > 0 for t in front)
    for t in front:  # nothing on the front is dominated by another trial
        others = [r for r in result["leaderboard"] if r["state"] == "complete"]
        assert not any(o["accuracy"] > t["values"]["accuracy"] and o["latency_ms"] < t["values"]["latency_ms"]
                       for o in others)
    assert any(Path(p).name == "pareto.png" for p in result["files"]["plots"])
    with pytest.raises(bestiary.errors.ConfigError, match="single objective"):
        tune("toy_mlp", "blobs", metric=["accuracy", "latency_ms"], pruner="median", runs_root=str(tmp_path))


def test_the_cli_takes_train_options_and_reports(tmp_path: Path) -> None:
    space = tmp_path / "space.toml"
    space.write_text('["model.hidden"]\ntype = "categorical"\nchoices = [4, 32]\n')
    root = tmp_path / "runs"
    res = CliRunner().invoke(main, ["tune", "toy_mlp", "--dataset", "blobs", "--trials", "2", "--sampler", "grid",
                                    "--space", str(space), "--epochs", "2", "--lr", "0.02", "--batch-size", "16",
                                    "--runs-root", str(root), "--storage", f"sqlite:///{tmp_path / 'tune.db'}",
                                    "--study", "s1", "--no-plots", "--json"])
    assert res.exit_code == 0, res.output
    result = json.loads(res.stdout)
    assert sorted(r["param:model.hidden"] for r in result["leaderboard"]) == [4, 32]  # the grid, once each
    for row in result["leaderboard"]:
        config = RunDir(row["run_dir"]).read_json("config.json")["config"]
        assert (config["lr"], config["epochs"], config["model"]["hidden"]) == (0.02, 2, row["param:model.hidden"])
    assert result["storage"].startswith("sqlite:///")
    listed = CliRunner().invoke(main, ["runs", "list", "--root", str(root)])
    assert listed.exit_code == 0 and listed.output.count("toy_mlp") >= 2
    text = CliRunner().invoke(main, ["tune", "toy_mlp", "--dataset", "blobs", "--trials", "2", "--space", str(space),
                                     "--runs-root", str(root), "--storage", f"sqlite:///{tmp_path / 'tune.db'}",
                                     "--study", "s1", "--sampler", "grid", "--no-plots"])
    assert text.exit_code == 0 and "best: trial" in text.output and "2 complete" in text.output


@pytest.mark.parametrize(("args", "message"), [
    (["--space", "SPACE"], "Did you mean 'weight_decay'"),
    (["--metric", "accuracy", "--metric", "latency_ms", "--direction", "max", "--direction", "min", "--direction", "max"],
     "one per --metric"),
    (["--metric", "accuracyy"], "accuracy"),
    (["--sampler", "cmaes", "--metric", "accuracy", "--metric", "latency_ms", "--pruner", "none"], "one objective"),
])
def test_bad_tune_input_is_a_usage_error(tmp_path: Path, args: list[str], message: str) -> None:
    space = tmp_path / "space.toml"
    space.write_text('[weight_decai]\ntype = "float"\nlow = 0.0\nhigh = 0.1\n')
    args = [str(space) if a == "SPACE" else a for a in args]
    res = CliRunner().invoke(main, ["tune", "toy_mlp", "--dataset", "blobs", "--runs-root", str(tmp_path), *args])
    assert res.exit_code == 2, res.output
    assert message in res.output
