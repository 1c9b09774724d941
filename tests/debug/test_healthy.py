"""A healthy resnet18 run on digits: every rule stays quiet; its saved statistics replay offline.

One short run is shared by every test here (resnet18 costs about a second per step on a small CPU).
Windows counted in steps are scaled down to the run's length, so the learning-curve rules judge it
instead of waiting for more steps than it has.
"""

from __future__ import annotations

import io
import json
from contextlib import redirect_stderr
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

import bestiary
from bestiary.cli import main
from bestiary.debug import read_findings
from bestiary.debug.replay import load_records, replay

STEPS = 24
SCALED = {"loss_not_decreasing": {"window": 8}, "step_time_outlier": {"warmup": 2}}

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def healthy(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    from bestiary.engine.config import RunConfig
    from bestiary.engine.trainer import train

    host = bestiary.PluginHost(autoload=False, disabled=("tensorboard",))
    # digits at their native 8x8 keep resnet18 cheap; a constant learning rate makes it learn fast
    config = RunConfig(arch="resnet18", dataset="digits", data={"img_size": 8}, batch_size=32, max_steps=STEPS,
                       lr=2e-3, schedule="constant", log_every=2, quiet=True, runs_root=str(tmp_path_factory.mktemp("healthy")),
                       options={"debugger": {"rules": "default", "debug_every": 4, "rule_options": SCALED}})
    err = io.StringIO()
    with redirect_stderr(err):  # the debugger writes to the console's stderr when the run ends
        summary = train(config, host=host)
    return {**summary, "stderr": err.getvalue()}


def test_every_rule_stays_quiet(healthy: dict[str, Any]) -> None:
    run_dir = Path(healthy["run_dir"])
    assert healthy["status"] == "completed"
    assert read_findings(run_dir / "findings.jsonl") == []
    report = (run_dir / "debug" / "report.md").read_text()
    assert "No findings: no rule saw a problem in 7 collection(s) (every 4 steps)." in report
    for name in ("vanishing_gradient", "dead_relu", "loss_not_decreasing", "dataloader_bottleneck", "class_imbalance"):
        assert f"| {name} | report |" in report
    assert "| exploding_tensor | stop | max_abs=100000000.0 | 0 |" in report
    assert "| loss_explosion | report | factor=100.0, window=10, min_points=3, min_level=0.01 | 0 |" in report
    # a clean run says what was checked
    assert healthy["stderr"].splitlines()[-1] == f"debugger: {_checked(run_dir)}, no findings"


def _checked(run_dir: str | Path) -> str:
    """What the closing line says was checked: the GPU-only rules do not run on a CPU."""
    on_cpu = json.loads((Path(run_dir) / "debug" / "info.json").read_text())["device"] == "cpu"
    return "13 rules checked over 7 collections" + (" (4 GPU-only rules not run)" if on_cpu else "")


def test_statistics_cover_every_layer(healthy: dict[str, Any]) -> None:
    run_dir = Path(healthy["run_dir"])
    records = load_records(run_dir)
    assert [r["step"] for r in records] == [1, 4, 8, 12, 16, 20, 24]
    info = json.loads((run_dir / "debug" / "info.json").read_text())
    params = info["params"]
    counts = info["labels"]["counts"]
    assert len(counts) == 10 and sum(counts) == 1257 and min(counts) > 100  # digits are balanced
    last = records[-1]
    assert set(last["gradients"]) == set(params) and set(last["weights"]) == set(params)
    assert params["conv1.weight"]["module"] == "Conv2d" and params["fc.weight"]["shape"] == [10, 512]
    relus = {n for n, a in last["activations"].items() if a["kind"] == "relu"}
    assert "act1" in relus and "layer4.1.act2" in relus
    assert all(0.0 <= a["dead"] <= 1.0 for a in last["activations"].values())
    assert 0 < last["updates"]["fc.weight"] < 0.1
    timing = last["timing"]
    assert [s[0] for s in timing["steps"]] == [21, 22, 23]  # collection steps are timed apart
    assert min(timing["forward"], timing["backward"], timing["optimizer"]) > 0
    assert 0 <= last["system"]["cpu_percent"] <= 100 and last["system"]["rss_mb"] > 0


def test_replay_agrees_with_the_live_run_and_takes_other_parameters(healthy: dict[str, Any]) -> None:
    run_dir = healthy["run_dir"]
    findings, ran, records = replay(run_dir)
    assert findings == [] and records == 7 and len(ran) == 17
    strict, _, _ = replay(run_dir, "weight_update_ratio", options={"weight_update_ratio": {"high": 1e-6}})
    assert strict and {f.rule for f in strict} == {"weight_update_ratio"}
    assert any("fc.weight" in f.evidence["layers"] for f in strict) and strict[0].step == 8  # 3rd collection


def test_debug_command(healthy: dict[str, Any], tmp_path: Path) -> None:
    run_dir = healthy["run_dir"]
    result = CliRunner().invoke(main, ["debug", run_dir])
    assert result.exit_code == 0, result.output
    assert f"debugger: {_checked(run_dir)}, no findings ({run_dir})" in result.output
    report = tmp_path / "report.md"
    result = CliRunner().invoke(main, ["debug", run_dir, "--rules", "weight_update_ratio", "--json",
                                       "--set", "weight_update_ratio.high=1e-6", "--report", str(report)])
    assert result.exit_code == 0, result.output
    found = [json.loads(line) for line in result.stdout.splitlines()]
    assert {f["rule"] for f in found} == {"weight_update_ratio"} and found[0]["suggestion"].startswith("lower")
    assert "## weight_update_ratio" in report.read_text()
    result = CliRunner().invoke(main, ["debug", run_dir, "--rules", "dead_relus"])
    assert result.exit_code == 2 and "dead_relu" in result.output
    result = CliRunner().invoke(main, ["debug", str(tmp_path)])
    assert result.exit_code == 1 and "not a run directory" in result.output
