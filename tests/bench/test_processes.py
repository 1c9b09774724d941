"""Suites whose measurements start processes: the command line end to end (with gluonts made
unimportable, as on a GPU machine without it), scaling under torchrun, and registry probes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from bestiary.benchmarks.report import leaderboard
from bestiary.benchmarks.runner import read_rows, run_suite
from bestiary.benchmarks.suite import read_suite, resolve_suite

ENGINE_TESTS = Path(__file__).resolve().parent.parent / "engine"

#: Runs the CLI with every import of gluonts failing, then checks nothing imported it.
NO_GLUONTS = """
import sys

class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == "gluonts":
            raise ImportError("gluonts is not installed here (blocked by the test)")
        return None

sys.meta_path.insert(0, Block())
from bestiary.cli import main
try:
    main(sys.argv[1:])
except SystemExit as exc:
    code = exc.code
else:
    code = 0
assert not [m for m in sys.modules if m.split(".")[0] == "gluonts"], "gluonts was imported"
sys.exit(code)
"""

GPU_LIKE = """
description = "the GPU suite's settings on toy models: bf16, channels-last, bare loop, eager"
measure = "throughput"
[settings]
warmup = 2
iterations = 3
input_size = [1, 4, 4]
num_classes = 3
device = "auto"
bare = true
[[matrix]]
architectures = ["toy_cnn"]
precisions = ["bf16"]
batch_sizes = [8]
channels_last = [true]
"""


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BESTIARY_")}
    env.update(BESTIARY_PLUGINS="toyzoo", PYTHONPATH=os.pathsep.join([str(ENGINE_TESTS), env.get("PYTHONPATH", "")]),
               BESTIARY_TENSORBOARD="0")
    return env


@pytest.mark.slow
def test_cli_run_without_gluonts_prints_the_leaderboard(tmp_path):
    suite = tmp_path / "gpu_like.toml"
    suite.write_text(GPU_LIKE)
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, "-c", NO_GLUONTS, "bench", "run", str(suite), "--out", str(out)], check=False,
                          env=_env(), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "# gpu_like:" in proc.stdout and "| 1 | toy_cnn |" in proc.stdout and "bare_ratio" in proc.stdout
    (row,) = read_rows(out)
    assert row["status"] == "ok", row.get("error")
    assert (row["precision"], row["channels_last"], row["method"]["precision"]) == ("bf16", True, "bf16")
    assert (out / "leaderboard.md").exists() and list(out.glob("*.png"))
    # the same command again finds the cell finished
    again = subprocess.run([sys.executable, "-c", NO_GLUONTS, "bench", "run", str(suite), "--out", str(out),
                            "--no-plots"], check=False, env=_env(), capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "done before, skipped" in again.stdout and len(read_rows(out)) == 1


def test_gpu_suite_without_a_gpu_gives_error_rows(toy_host, tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU: the suite would measure")
    rows = run_suite(resolve_suite("throughput-gpu"), tmp_path / "out", pattern="resnet50", echo=lambda _: None)
    assert len(rows) == 2 and all(r["status"] == "error" and "sees no GPU" in r["error"] for r in rows)


@pytest.mark.slow
def test_scaling_single_and_ddp(toy_host, tmp_path, monkeypatch):
    for key, value in _env().items():
        monkeypatch.setenv(key, value)
    path = tmp_path / "toyscale.toml"
    path.write_text(textwrap.dedent("""
        description = "toy scaling"
        measure = "scaling"
        [config]
        device = "cpu"
        epochs = 1
        max_steps = 6
        batch_size = 8
        [[matrix]]
        architectures = ["toy_mlp"]
        datasets = ["blobs"]
        strategies = ["single"]
        [[matrix]]
        architectures = ["toy_mlp"]
        datasets = ["blobs"]
        strategies = ["ddp"]
        world_sizes = [2]
        """))
    rows = run_suite(read_suite(path), tmp_path / "out", echo=lambda _: None)
    assert [(r["strategy"], r["world_size"], r["status"]) for r in rows] == [("single", 1, "ok"), ("ddp", 2, "ok")], \
        [r.get("error") for r in rows]
    for r in rows:
        assert r["metrics"]["train_samples_per_s"]["median"] > 0 and "accuracy" in r["metrics"]
        assert json.loads((Path(r["info"]["run_dir"]) / "summary.json").read_text())["steps"] == 6
    text = leaderboard(rows, "toy scaling")
    assert "efficiency (higher is better)" in text


@pytest.mark.slow
def test_registry_probes(toy_host, tmp_path):
    path = tmp_path / "reg.toml"
    path.write_text('description = "probes"\nmeasure = "registry"\n[settings]\nruns = 1\n'
                    '[[matrix]]\nprobes = ["import", "lookup", "heavy_imports"]\n')
    rows = {r["probe"]: r for r in run_suite(read_suite(path), tmp_path / "out", echo=lambda _: None)}
    assert all(r["status"] == "ok" for r in rows.values()), [r.get("error") for r in rows.values()]
    assert 0 < rows["import"]["metrics"]["wall_s"]["median"] < 30
    assert 0 < rows["lookup"]["metrics"]["get_entry_bare_us"]["median"] < 1000
    assert rows["heavy_imports"]["metrics"]["heavy_modules"]["median"] == 0
    assert rows["import"]["better"]["wall_s"] == "lower"
