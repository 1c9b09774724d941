"""A run killed or stopped at its very end and resumed finishes as an uninterrupted one: the same
weights, the same final evaluation, the same metrics records and summary (wall times aside)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from safetensors.torch import load_file

HERE = Path(__file__).resolve().parent
TRAIN = ("train", "toy_mlp", "--dataset", "blobs", "--batch-size", "16", "--quiet", "--json")
#: Figures that measure the wall clock, which a resumed run cannot reproduce.
WALL = {"time", "samples_per_s", "wall_time_s", "train_samples_per_s", "run_dir"}


def bestiary(*args: str, cwd: Path, signal_at: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "BESTIARY_PLUGINS": "toyzoo,killer", "PYTHONPATH": str(HERE), "COLUMNS": "250"}
    env.pop("BESTIARY_TEST_SIGNAL", None)
    if signal_at:
        env["BESTIARY_TEST_SIGNAL"] = signal_at
    return subprocess.run([sys.executable, "-m", "bestiary", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=240, check=False)


def without_wall(record: dict) -> dict:
    return {k: v for k, v in record.items() if k not in WALL}


def outcome(run: Path) -> tuple[list[dict], dict, dict]:
    """The run's metrics records and summary without wall times, and its exported weights."""
    records = [without_wall(json.loads(line)) for line in (run / "metrics.jsonl").read_text().splitlines()]
    summary = without_wall(json.loads((run / "summary.json").read_text()))
    return records, summary, load_file(str(run / "model" / "model.safetensors"))


def indexed(root: Path) -> dict[str, dict]:
    """The runs index's rows by run id."""
    done = bestiary("runs", "list", "--root", str(root), "--json", cwd=root.parent)
    assert done.returncode == 0, done.stderr
    return {row["id"]: row for row in json.loads(done.stdout)}


def interrupted_then_resumed(tmp_path: Path, args: tuple[str, ...], signal_at: str, code: int) -> Path:
    run = tmp_path / "runs" / "resumed"
    first = bestiary(*TRAIN, *args, "--run-dir", str(run), cwd=tmp_path, signal_at=signal_at)
    assert first.returncode == code, first.stderr[-3000:]
    assert not (run / "model").exists()
    done = bestiary("train", "--resume", str(run), "--quiet", "--json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    return run


def assert_same_outcome(tmp_path: Path, args: tuple[str, ...], resumed: Path) -> None:
    full = tmp_path / "runs" / "full"
    done = bestiary(*TRAIN, *args, "--run-dir", str(full), cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    (records, summary, weights), (records2, summary2, weights2) = outcome(full), outcome(resumed)
    assert records2 == records
    assert summary2 == summary
    assert weights2.keys() == weights.keys() and all((weights2[k] == weights[k]).all() for k in weights)


EPOCHS = ("--epochs", "2", "--checkpoint-every", "6")  # 9 steps an epoch: checkpoints at 6, 12, 18


@pytest.mark.parametrize(("nth", "moment"), [(1, "after the last step's checkpoint"),
                                             (2, "after the final checkpoint, before export")])
def test_a_run_killed_at_its_last_step_finishes_as_an_uninterrupted_one(tmp_path: Path, nth: int,
                                                                        moment: str) -> None:
    resumed = interrupted_then_resumed(tmp_path, EPOCHS, f"checkpoint@18#{nth}=SIGKILL", -9)
    assert_same_outcome(tmp_path, EPOCHS, resumed)
    records, summary, _ = outcome(resumed)
    # the final validation is there once, at the last step, and the summary reports it
    finals = [r for r in records if r["split"] == "validation" and r["step"] == 18]
    assert len(finals) == 1, moment
    assert summary["final"] == {k: v for k, v in finals[0].items() if k not in ("step", "epoch", "split")}
    assert summary["epochs"] == 2 and summary["best"]["step"] == 18
    # the runs index records the run's true outcome, the uninterrupted run's
    rows = indexed(tmp_path / "runs")
    assert {k: rows["resumed"][k] for k in ("status", "steps", "best", "best_step")} == {
        k: rows["full"][k] for k in ("status", "steps", "best", "best_step")}
    assert rows["resumed"]["best"] == summary["best"]["value"]


def test_a_run_stopped_in_its_last_step_evaluates_on_resume(tmp_path: Path) -> None:
    args = ("--max-steps", "3")
    resumed = interrupted_then_resumed(tmp_path, args, "batch@2#1=SIGTERM", 143)
    _, summary, _ = outcome(resumed)
    assert summary["status"] == "completed" and summary["final"], summary
    assert_same_outcome(tmp_path, args, resumed)
