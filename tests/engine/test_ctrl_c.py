"""Ctrl-C on a real ``bestiary train`` process does what docs/training.md says: the first one
checkpoints at the next step boundary and exits 130; a second one stops the run at once."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from bestiary.engine import checkpoint as ckpt
from bestiary.engine.rundir import RunDir

HERE = Path(__file__).resolve().parent
DOCS = HERE.parents[1] / "docs" / "training.md"


def start(run_dir: Path, *plugins: str, extra_path: Path | None = None) -> subprocess.Popen[str]:
    """A long ``bestiary train`` of the toy zoo, with a checkpoint every 3 steps."""
    path = os.pathsep.join(str(p) for p in (HERE, extra_path) if p)
    env = {**os.environ, "BESTIARY_PLUGINS": ",".join(("toyzoo", *plugins)), "PYTHONPATH": path, "COLUMNS": "250"}
    return subprocess.Popen([sys.executable, "-m", "bestiary", "train", "toy_mlp", "--dataset", "blobs",
                             "--epochs", "2000", "--checkpoint-every", "3", "--log-every", "1", "--quiet",
                             "--run-dir", str(run_dir)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def wait_for_training(proc: subprocess.Popen[str], run_dir: Path) -> None:
    deadline = time.monotonic() + 120
    while not any(r.get("split") == "train" for r in RunDir(run_dir).metrics()):
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "the run logged no step in 120 s"
        time.sleep(0.05)


def test_the_docs_say_what_ctrl_c_does() -> None:
    text = " ".join(DOCS.read_text().split())
    assert "130 for Ctrl-C" in text and "A second Ctrl-C before the run has stopped interrupts it at once" in text
    assert "Ctrl-C is not a SIGTERM" not in text


def test_ctrl_c_checkpoints_at_the_step_boundary_and_exits_130(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    proc = start(run_dir)
    wait_for_training(proc, run_dir)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    summary = json.loads((run_dir / "summary.json").read_text())
    assert (summary["status"], summary["signal"]) == ("interrupted", "SIGINT")
    assert json.loads((run_dir / "config.json").read_text())["status"] == "interrupted"
    latest = RunDir(run_dir).latest_checkpoint()
    assert latest is not None and latest.name == f"step-{summary['steps']:08d}"  # written at the stop, not before
    ckpt.verify(latest)
    assert f"interrupted; continue with `bestiary train --resume {run_dir}`" in err
    assert not (run_dir / "model").exists()  # an interrupted run exports no model


TWICE = '''
import os, signal
from bestiary import hookimpl

sent = []


@hookimpl
def on_step_end(run, step, metrics):
    if step == 4 and not sent:  # one step past a checkpoint: a stop now would write step 4's
        sent.append(step)
        os.kill(os.getpid(), signal.SIGINT)
        os.kill(os.getpid(), signal.SIGINT)
'''


def test_a_second_ctrl_c_stops_at_once_without_a_checkpoint(tmp_path: Path) -> None:
    (tmp_path / "twice.py").write_text(TWICE)
    run_dir = tmp_path / "run"
    proc = start(run_dir, "twice", extra_path=tmp_path)
    _, err = proc.communicate(timeout=180)
    assert proc.returncode == 1, err
    assert err.strip().splitlines()[-1] == "Aborted!"
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "failed" and summary["error"] == "KeyboardInterrupt: "
    assert [p.name for p in RunDir(run_dir).list_checkpoints()] == ["step-00000003"]  # only the periodic one
