"""A long sweep never falls silent, and a quality cell does not oversubscribe a busy machine."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

import bestiary
from bestiary.benchmarks.runner import fit_threads
from bestiary.benchmarks.suite import read_suite
from bestiary.benchmarks.timing import fitting_threads

pytestmark = pytest.mark.slow


def test_threads_fit_the_free_cores() -> None:
    assert fitting_threads(2, 0.0, 2) == 2
    assert fitting_threads(2, 0.2, 2) == 2  # a little background work is not worth a thread
    assert fitting_threads(2, 1.0, 2) == 1
    assert fitting_threads(2, 3.0, 2) == 1  # at least one
    assert fitting_threads(8, 2.0, 4) == 4  # never more than before


def test_a_quality_cell_trains_with_fewer_threads_beside_a_busy_process(tmp_path: Path,
                                                                       toy_host: bestiary.PluginHost) -> None:
    (tmp_path / "q.toml").write_text(textwrap.dedent("""
        description = "toy quality"
        measure = "quality"
        [[matrix]]
        architectures = ["toy_mlp"]
        datasets = ["blobs"]
        """))
    previous_threads = torch.get_num_threads()
    # A real process spinning on one core for the whole test (killed at the end).
    spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        torch.set_num_threads(2)
        (cell,) = read_suite(tmp_path / "q.toml").cells()
        log: list[str] = []
        fit_threads(cell, log.append)
        assert torch.get_num_threads() == 1, log
        assert len(log) == 1 and "training with 1 thread(s) instead of 2" in log[0]
    finally:
        spinner.kill()
        spinner.wait()
        torch.set_num_threads(previous_threads)


def test_a_run_writes_one_progress_line_per_epoch_when_not_on_a_terminal(tmp_path: Path) -> None:
    engine = Path(__file__).resolve().parents[1] / "engine"  # the toy zoo, loaded by path
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(engine), os.environ.get("PYTHONPATH", "")]),
           "BESTIARY_PLUGINS": "toyzoo", "BESTIARY_DISABLE_PLUGIN_AUTOLOAD": "1"}
    done = subprocess.run(
        [sys.executable, "-m", "bestiary", "train", "toy_mlp", "--dataset", "blobs", "--epochs", "3",
         "--batch-size", "16", "--log-every", "1", "--runs-root", str(tmp_path / "runs")],
        env=env, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.startswith("epoch ")]
    assert [line.split()[1] for line in lines] == ["1", "2", "3"], done.stderr
    last = lines[-1].split()
    steps, total = last[3].split("/")
    assert steps == total and "samples/s" in lines[-1] and lines[-1].endswith("left")
