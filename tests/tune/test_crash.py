"""Crash safety and concurrent tuners, with real tuner processes sharing a real journal file."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bestiary.engine.index import RunsIndex
from bestiary.engine.rundir import RunDir

pytestmark = pytest.mark.slow


def tune_command(root: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "bestiary", "tune", "toy_mlp", "--dataset", "blobs", "--runs-root", str(root), "--batch-size", "16",
            "--no-plots", *extra]


def load(root: Path, name: str = "toy_mlp-blobs"):
    import optuna

    from bestiary.tune.storage import open_storage

    storage = open_storage(None, root / "studies" / f"{name}.journal")
    return optuna.load_study(study_name=name, storage=storage)


def test_a_killed_tuner_continues_where_it_stopped(tmp_path: Path, toy_env: dict[str, str]) -> None:
    root = tmp_path / "runs"
    cmd = tune_command(root, "--trials", "2", "--epochs", "30", "--checkpoint-every", "10", "--pruner", "none",
                       "--sampler-seed", "0")
    tuner = subprocess.Popen(cmd, env=toy_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    victim = None
    deadline = time.time() + 120
    while victim is None and time.time() < deadline and tuner.poll() is None:
        runs = sorted(p for p in root.glob("2*") if (p / "config.json").exists())
        if len(runs) == 2 and any(r.get("split") == "validation" for r in RunDir(runs[1]).metrics()) \
                and RunDir(runs[1]).latest_checkpoint() is not None:
            victim = runs[1]
        time.sleep(0.05)
    assert victim is not None, f"the second trial never got under way: {tuner.communicate()[0].decode()[-2000:]}"
    # 30 epochs leave the poll above ample time to catch the trial mid-way on a fast machine
    os.kill(tuner.pid, signal.SIGKILL)  # mid-trial, after a checkpoint: no handler runs
    tuner.wait()
    assert not (victim / "summary.json").exists()
    study = load(root)
    assert [t.state.name for t in study.get_trials()] == ["COMPLETE", "RUNNING"]
    killed = study.get_trials()[1]

    rerun = subprocess.run(cmd, env=toy_env, capture_output=True, text=True, timeout=300, check=False)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    trials = load(root).get_trials()
    assert [t.state.name for t in trials] == ["COMPLETE", "FAIL", "COMPLETE"]  # kept, failed, retried
    retry = trials[2]
    assert retry.params == killed.params and retry.system_attrs["failed_trial"] == killed.number
    assert retry.user_attrs["run_dir"] == str(victim)  # the interrupted run continued from its checkpoint
    summary = RunDir(victim).read_json("summary.json")
    assert summary["status"] == "completed" and summary["epochs"] == 30
    steps = [r["step"] for r in RunDir(victim).metrics() if r.get("split") == "train"]
    assert steps == sorted(set(steps))  # no step logged twice after the resume
    assert {row["status"] for row in RunsIndex(root).rows(limit=10)} == {"completed"}


def test_two_tuners_share_one_study(tmp_path: Path, toy_env: dict[str, str]) -> None:
    root = tmp_path / "runs"
    cmd = tune_command(root, "--trials", "4", "--epochs", "2", "--study", "shared")
    procs = [subprocess.Popen(cmd, env=toy_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
             for _ in range(2)]
    outputs = [p.communicate(timeout=300)[0].decode() for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    trials = load(root, "shared").get_trials()
    states = [t.state.name for t in trials]
    assert "RUNNING" not in states and "WAITING" not in states
    finished = [t for t in trials if t.state.name in ("COMPLETE", "PRUNED")]
    assert 4 <= len(finished) <= 5  # the other tuner may have started one more before the fourth ended
    owners = {t.system_attrs["bestiary:owner"]["pid"] for t in trials}
    assert owners == {p.pid for p in procs}  # both did work
    run_dirs = [t.user_attrs["run_dir"] for t in trials]
    assert len(set(run_dirs)) == len(trials)
    indexed = {Path(r["path"]).name for r in RunsIndex(root).rows(limit=100)}
    assert {Path(d).name for d in run_dirs} <= indexed
    for d in run_dirs:
        assert RunDir(d).read_json("summary.json")["status"] in ("completed", "stopped")
