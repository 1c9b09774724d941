"""Each debugger rule fires on a run built to trigger it: real (tiny) training runs, real files.

The GPU rules cannot run on a CPU-only machine: their decision logic is tested on a real recorded
collection record with GPU figures supplied (the only part faked), next to the same record with
healthy GPU figures, on which they stay quiet.
"""

from __future__ import annotations

import copy
import json
import sys
from pathlib import Path
from typing import Any

import pytest

import bestiary
from bestiary.debug import Finding, read_findings, select_rules
from bestiary.debug.findings import fmt
from bestiary.errors import ConfigError
from bestiary.registry import UnknownEntryError

HERE = Path(__file__).resolve().parent
for folder in (HERE, HERE.parent / "engine"):
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))

import debugzoo
import toyzoo


def make_host(tensorboard: bool = False) -> bestiary.PluginHost:
    host = bestiary.PluginHost(autoload=False, disabled=() if tensorboard else ("tensorboard",))
    for plugin, name in ((toyzoo, "toyzoo"), (debugzoo, "debugzoo")):
        assert host.add_plugin(plugin, name).status == "ok"
    return host


HOST = make_host()


def train(root: Path, **config: Any) -> tuple[dict[str, Any], list[Finding]]:
    from bestiary.engine.config import RunConfig
    from bestiary.engine.trainer import train as run

    values: dict[str, Any] = {"arch": "toy_mlp", "dataset": "blobs", "quiet": True, "runs_root": str(root),
                              "batch_size": 16, "log_every": 1, "debug_every": 1}
    host = config.pop("host", HOST)
    values.update(config)
    summary = run(RunConfig.from_dict(values), host=host)  # rules= and debug_every= go to [options.debugger]
    return summary, read_findings(Path(summary["run_dir"]) / "findings.jsonl")


def rules_of(findings: list[Finding]) -> list[str]:
    return [f.rule for f in findings]


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("debug-runs")


# -- runs, one per condition, shared by the tests that read them ----------------------------------


@pytest.fixture(scope="module")
def vanishing(root: Path) -> tuple[dict[str, Any], list[Finding]]:
    return train(root, arch="deep_sigmoid", max_steps=5, rules="vanishing_gradient,exploding_tensor")


@pytest.fixture(scope="module")
def exploding(root: Path) -> tuple[dict[str, Any], list[Finding]]:
    return train(root, optimizer="sgd", lr=1e3, max_steps=30, rules="exploding_tensor,weight_update_ratio",
                 host=make_host(tensorboard=True))


@pytest.fixture(scope="module")
def shuffled(root: Path) -> tuple[dict[str, Any], list[Finding]]:
    return train(root, dataset="blobs_variant", data={"shuffle_labels": True}, epochs=4,
                 rules="loss_not_decreasing", rule_options={"loss_not_decreasing": {"window": 10}})


@pytest.fixture(scope="module")
def overfitted(root: Path) -> tuple[dict[str, Any], list[Finding]]:
    # 36 noisy training samples, a wide MLP and 25 epochs: it memorises them, validation suffers
    return train(root, model={"hidden": 256, "dropout": 0.0}, dataset="blobs_variant", data={"n": 60, "noise": 3.0},
                 epochs=25, lr=0.03, batch_size=36, rules="overfitting,overtraining")


# -- tensor rules ---------------------------------------------------------------------------------


def test_vanishing_gradient_fires_on_a_deep_sigmoid_mlp(vanishing: tuple[dict[str, Any], list[Finding]]) -> None:
    _, findings = vanishing
    assert rules_of(findings) == ["vanishing_gradient"]
    (f,) = findings
    assert f.step == 3 and "1.weight" in f.evidence["layers"] and f.evidence["since_step"] == 1
    assert max(f.evidence["layers"].values()) < 1e-7
    assert "gradients of 1.weight" in f.message and "below 1.00e-07" in f.message
    assert "residual" in f.suggestion and "normalisation" in f.suggestion


def test_exploding_tensor_stops_the_run_with_a_checkpoint(exploding: tuple[dict[str, Any], list[Finding]]) -> None:
    summary, findings = exploding
    assert "exploding_tensor" in rules_of(findings)
    f = next(f for f in findings if f.rule == "exploding_tensor")
    assert f.severity == "error" and f.action == "stop"
    assert summary["status"] == "stopped" and summary["steps"] < 30
    assert summary["stop_reason"].startswith("debugger rule exploding_tensor: ")
    run_dir = Path(summary["run_dir"])
    assert (run_dir / "checkpoints").is_dir() and any((run_dir / "checkpoints").iterdir())
    assert "learning rate" in f.suggestion and "--clip-grad-norm" in f.suggestion
    # the same lr also makes each step rewrite the weights many times over
    ratio = next(f for f in findings if f.rule == "weight_update_ratio")
    assert "more than 0.1 of their size" in ratio.message and max(ratio.evidence["layers"].values()) > 1


def test_findings_reach_tensorboard(exploding: tuple[dict[str, Any], list[Finding]]) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    summary, findings = exploding
    events = EventAccumulator(str(Path(summary["run_dir"]) / "tensorboard"), size_guidance={"tensors": 0}).Reload()
    tags = events.Tags()["tensors"]
    assert "debugger/exploding_tensor/text_summary" in tags
    text = events.Tensors("debugger/exploding_tensor/text_summary")[0].tensor_proto.string_val[0].decode()
    assert "Suggestion: lower the learning rate" in text
    assert [e.value for e in events.Scalars("debugger/findings")][-1] == len(findings)


def test_the_default_rules_flag_a_loss_that_explodes(root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # healthy first steps, then warm-up raises SGD's learning rate past what the steep model bears
    summary, findings = train(root, arch="diverging_mlp", optimizer="sgd", lr=0.2, warmup_steps=6,
                              schedule="constant", max_steps=20, rules="default")
    err = capsys.readouterr().err
    boom = next(f for f in findings if f.rule == "loss_explosion")
    assert boom.severity == "error" and boom.action == "report"
    level, loss = boom.evidence["recent_level"], boom.evidence["loss"]
    assert 1 < level < 100 and 1e3 * level < loss < 1e8  # finite, and under exploding_tensor's max_abs
    assert f"the training loss jumped to {fmt(loss)} at step {boom.step}" in boom.message
    assert "learning rate" in boom.suggestion
    # flagged before the loss overflowed, at the step it jumped
    metrics = [json.loads(line) for line in (Path(summary["run_dir"]) / "metrics.jsonl").read_text().splitlines()]
    losses = {m["step"]: m["loss"] for m in metrics if m.get("split") == "train"}
    assert losses[boom.step] == loss and all(v < 100 * level for s, v in losses.items() if s < boom.step)
    assert boom.line() in err
    # the run ends with one line that says what was checked and what was found, on stderr
    counts = {s: sum(f.severity == s for f in findings) for s in ("error", "warning", "info")}
    by_severity = ", ".join(f"{n} {s}{'' if n == 1 else 's'}" for s, n in counts.items() if n)
    report = Path(summary["run_dir"]) / "debug" / "report.md"
    records = len((Path(summary["run_dir"]) / "debug" / "stats.jsonl").read_text().splitlines())
    on_cpu = json.loads((report.parent / "info.json").read_text())["device"] == "cpu"
    checked = f"13 rules checked over {records} collections (4 GPU-only rules not run)" if on_cpu else \
        f"17 rules checked over {records} collections"
    line = f"debugger: {checked}, {len(findings)} findings ({by_severity}): see {report}"
    assert err.splitlines()[-1] == line
    assert "## loss_explosion" in report.read_text()


def test_loss_explosion_judges_the_jump_not_the_size() -> None:
    def feed(losses: list[float]) -> list[Finding]:
        (rule,) = select_rules("loss_explosion", HOST)  # a fresh rule for each curve
        return [f for step, loss in enumerate(losses, 1) for f in rule.metrics(step, "train", {"loss": loss})]

    assert feed([2.3, 2.2, 2.1, 2.0, 150.0]) == []  # 75 times: a spike, not two orders of magnitude
    (nan,) = feed([2.3, 2.2, 2.1, float("nan")])
    assert nan.step == 4 and "jumped to NaN" in nan.message and nan.evidence["loss"] == "nan"
    assert feed([1e-4, 1e-4, 2e-4, 0.5]) == []  # near zero, a small absolute rise is not an explosion
    assert feed([1e-4, 1e-4, 2e-4, 5.0]) != []
    assert feed([-3.0, -3.1, -2.9, 400.0]) != []  # losses below zero (likelihoods) too
    assert feed([2.3, 1e6]) == []  # two logged losses set no level yet: exploding_tensor watches the first steps
    (late,) = feed([2.3, 2.2, 2.1, 2.0, 1.9, 3e5, 3e5, 3e5])
    assert late.step == 6  # reported once


def test_dead_relu_fires_when_every_unit_is_off(root: Path) -> None:
    _, findings = train(root, arch="dead_relu_mlp", max_steps=3, rules="dead_relu,vanishing_gradient")
    dead = [f for f in findings if f.rule == "dead_relu"]
    assert len(dead) == 1 and dead[0].evidence["layers"] == {"2": 1.0, "4": 1.0}
    assert "the ReLU layer(s) 2, 4 output zero for every sample" in dead[0].message and "100%" in dead[0].message
    assert "LeakyReLU" in dead[0].suggestion


def test_saturated_activation_and_poor_initialisation_fire_on_oversized_tanh_weights(root: Path) -> None:
    _, findings = train(root, arch="big_tanh", max_steps=3, rules="saturated_activation,poor_weight_initialization")
    assert sorted(rules_of(findings)) == ["poor_weight_initialization", "saturated_activation"]
    init = next(f for f in findings if f.rule == "poor_weight_initialization")
    assert init.step == 1 and set(init.evidence["std_times_sqrt_fan_in"]) == {"1.weight", "3.weight", "5.weight"}
    assert all(r > 10 for r in init.evidence["std_times_sqrt_fan_in"].values())
    sat = next(f for f in findings if f.rule == "saturated_activation")
    assert sat.evidence["layers"]["2"] >= 0.5 and "Xavier" in sat.suggestion


def test_weight_update_ratio_fires_on_a_learning_rate_too_small_to_move_weights(root: Path) -> None:
    _, findings = train(root, lr=1e-9, max_steps=3, rules="weight_update_ratio,loss_not_decreasing")
    (f,) = findings
    assert f.rule == "weight_update_ratio" and "less than 1.00e-06 of their size" in f.message
    assert set(f.evidence["layers"]) == {"1.weight", "4.weight"} and "raise the learning rate" in f.suggestion


# -- learning-curve and data rules ------------------------------------------------------------------


def test_loss_not_decreasing_fires_on_shuffled_labels(shuffled: tuple[dict[str, Any], list[Finding]]) -> None:
    _, findings = shuffled
    (f,) = findings
    assert f.rule == "loss_not_decreasing" and f.evidence["window"] == 10
    assert f.evidence["recent_mean"] > 0.99 * f.evidence["previous_mean"]
    assert "shuffled or misaligned labels" in f.suggestion


def test_overfitting_and_overtraining_fire_on_a_memorised_training_set(
        overfitted: tuple[dict[str, Any], list[Finding]]) -> None:
    _, findings = overfitted
    assert sorted(rules_of(findings)) == ["overfitting", "overtraining"]
    over = next(f for f in findings if f.rule == "overfitting")
    assert over.evidence["validation_loss"] > 1.5 * over.evidence["training_loss"]
    assert over.evidence["training_loss"] < over.evidence["first_training_loss"]
    plateau = next(f for f in findings if f.rule == "overtraining")
    assert plateau.evidence["evaluations"] == 3 and plateau.evidence["current"] >= plateau.evidence["best"]
    assert f"keep the model of step {plateau.evidence['best_step']}" in plateau.suggestion


def test_class_imbalance_reads_the_dataset_labels(root: Path) -> None:
    _, findings = train(root, dataset="blobs_variant", data={"keep_class0": 0.05}, max_steps=1, rules="class_imbalance")
    (f,) = findings
    assert f.step == 0 and f.evidence["counts"]["0"] < f.evidence["counts"]["1"] / 10
    assert "class 0 only" in f.message and "weighted sampler" in f.suggestion


def test_dataloader_bottleneck_fires_on_a_slow_dataset(root: Path) -> None:
    _, findings = train(root, dataset="blobs_variant", data={"sleep_s": 0.003}, batch_size=8, max_steps=13,
                        debug_every=4, rules="dataloader_bottleneck")
    (f,) = findings
    assert f.evidence["data_share"] > 0.3 and "--num-workers" in f.suggestion


def test_step_time_outlier_fires_on_a_stall(root: Path) -> None:
    # item 130 of the epoch sleeps 0.5 s once: step 17 of batches of 8; judged at the end of the run
    summary, findings = train(root, dataset="blobs_variant", data={"stall_after": 130, "stall_s": 0.5},
                              batch_size=8, max_steps=18, debug_every=50, rules="step_time_outlier")
    (f,) = findings
    assert "17" in f.evidence["outliers"] and f.evidence["outliers"]["17"] > 0.5
    assert f.step == summary["steps"] and "step 17 took" in f.message


# -- GPU rules: decision logic on a real record with GPU figures supplied ---------------------------


@pytest.fixture(scope="module")
def record(vanishing: tuple[dict[str, Any], list[Finding]]) -> dict[str, Any]:
    lines = (Path(vanishing[0]["run_dir"]) / "debug" / "stats.jsonl").read_text().splitlines()
    return json.loads(lines[-1])


def feed(rule_name: str, record: dict[str, Any], gpu: list[dict[str, float]], **options: Any) -> list[Finding]:
    (rule,) = select_rules(rule_name, HOST, {rule_name: options} if options else None)
    assert rule.device == "cuda"
    rule.start({"device": "cuda", "batch_size": 16})
    found = []
    for i, figures in enumerate(gpu):
        r = copy.deepcopy(record)
        r["step"] = (i + 1) * 10
        r["system"] = {**r["system"], "device": "cuda", **figures}
        found += list(rule.observe(r))
    return found


GIB = 1024.0


def test_low_gpu_utilization_logic(record: dict[str, Any]) -> None:
    (f,) = feed("low_gpu_utilization", record, [{"gpu_util": 12.0}] * 3)
    assert f.step == 30 and "busy only 12%" in f.message and "raise the batch size" in f.suggestion
    assert feed("low_gpu_utilization", record, [{"gpu_util": 95.0}] * 5) == []
    assert feed("low_gpu_utilization", record, [{"gpu_util": 12.0}, {"gpu_util": 90.0}] * 3) == []


def test_cpu_bottleneck_logic(record: dict[str, Any]) -> None:
    (f,) = feed("cpu_bottleneck", record, [{"cpu_percent": 98.0, "gpu_util": 20.0}] * 3)
    assert "CPUs were 98% busy" in f.message and "cache" in f.suggestion
    assert feed("cpu_bottleneck", record, [{"cpu_percent": 98.0, "gpu_util": 90.0}] * 5) == []


def test_gpu_memory_growth_logic(record: dict[str, Any]) -> None:
    leak = [{"gpu_mem_alloc_mb": 1000.0 + 150 * i} for i in range(9)]
    (f,) = feed("gpu_memory_growth", record, leak)
    assert "grew at each of the last 5 collections" in f.message and "loss.item()" in f.suggestion
    steady = [{"gpu_mem_alloc_mb": 1000.0 + (5 if i % 2 else 0)} for i in range(9)]
    assert feed("gpu_memory_growth", record, steady) == []


def test_batch_size_too_small_logic(record: dict[str, Any]) -> None:
    small = [{"gpu_mem_peak_mb": 2 * GIB, "gpu_mem_total_mb": 80 * GIB, "gpu_util": 35.0}] * 3
    (f,) = feed("batch_size_too_small", record, small)
    assert "batch size of 16 uses 2% of the GPU's 80 GiB" in f.message and "raise the batch size" in f.suggestion
    full = [{"gpu_mem_peak_mb": 60 * GIB, "gpu_mem_total_mb": 80 * GIB, "gpu_util": 35.0}] * 5
    assert feed("batch_size_too_small", record, full) == []


def test_gpu_rules_are_not_run_on_the_cpu(vanishing: tuple[dict[str, Any], list[Finding]], root: Path) -> None:
    summary, _ = train(root, max_steps=2, rules="low_gpu_utilization")
    report = (Path(summary["run_dir"]) / "debug" / "report.md").read_text()
    assert "| low_gpu_utilization | - | not run: needs a cuda device | - |" in report


# -- choosing rules -----------------------------------------------------------------------------------


def test_rule_selection_actions_and_options() -> None:
    rules = select_rules("default,dead_relu:stop", HOST, {"dead_relu": {"threshold": 0.9}})
    assert len(rules) == 17 and {r.name for r in rules} == {e.name for e in HOST.registry.table("rules")}
    dead = next(r for r in rules if r.name == "dead_relu")
    assert dead.action == "stop" and dead.threshold == 0.9
    assert next(r for r in rules if r.name == "exploding_tensor").action == "stop"  # its default
    with pytest.raises(UnknownEntryError, match="vanishing_gradient"):
        select_rules("vanishing_gradiant", HOST)
    with pytest.raises(ConfigError, match="no parameter 'treshold'.*Did you mean 'threshold'"):
        select_rules("dead_relu", HOST, {"dead_relu": {"treshold": 0.9}})
    with pytest.raises(ConfigError, match="does not use: overfiting"):
        select_rules("dead_relu", HOST, {"overfiting": {}})
    with pytest.raises(ConfigError, match="action 'halt' is not one of report, stop"):
        select_rules("dead_relu", HOST, {"dead_relu": {"action": "halt"}})


# -- the command line, accumulation ---------------------------------------------------------------


def test_train_command_takes_rules_and_stops_on_a_finding(root: Path) -> None:
    from click.testing import CliRunner

    from bestiary.cli import main

    bestiary.reset_host(HOST)  # the conftest restores the process-wide host afterwards
    runner = CliRunner()
    args = ["train", "dead_relu_mlp", "--dataset", "blobs", "--runs-root", str(root / "cli"), "--quiet",
            "--max-steps", "6", "--debug-every", "1", "--json"]
    result = runner.invoke(main, [*args, "--rules", "dead_rellu"])
    assert result.exit_code == 2 and "dead_relu" in result.output and "bestiary list rules" in result.output
    assert not (root / "cli").exists()  # refused before anything was built
    result = runner.invoke(main, [*args, "--rules", "dead_relu:stop"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout[result.stdout.index("{"):])
    assert summary["status"] == "stopped" and summary["steps"] == 2
    assert summary["stop_reason"].startswith("debugger rule dead_relu: the ReLU layer(s) 2, 4 output zero")
    listed = json.loads(runner.invoke(main, ["list", "rules", "--json"]).stdout)
    assert len(listed) == 17 and next(
        e["defaults"] for e in listed if e["name"] == "dead_relu") == {"threshold": 0.5, "patience": 2, "action": "report"}


def test_a_run_stopped_before_its_first_evaluation_says_so(root: Path) -> None:
    from click.testing import CliRunner

    from bestiary.cli import main

    bestiary.reset_host(HOST)  # the conftest restores the process-wide host afterwards
    result = CliRunner().invoke(main, ["train", "dead_relu_mlp", "--dataset", "blobs", "--runs-root",
                                       str(root / "cli-text"), "--quiet", "--debug-every", "1",
                                       "--rules", "dead_relu:stop"])
    assert result.exit_code == 0, result.output
    assert "no validation split" not in result.output  # blobs has one: the run ended before using it
    assert "stopped after 2 steps" in result.output
    assert "not evaluated: the run ended before its first validation" in result.output
    assert "stopped because debugger rule dead_relu: " in result.output


def test_collection_with_gradient_accumulation(root: Path) -> None:
    # 9 batches of 16, 3 per optimizer step: 3 steps; collections at steps 1 and 2
    summary, _ = train(root, accumulate=3, debug_every=2, rules="vanishing_gradient,dataloader_bottleneck")
    lines = (Path(summary["run_dir"]) / "debug" / "stats.jsonl").read_text().splitlines()
    records = [json.loads(line) for line in lines]
    assert summary["steps"] == 3
    assert [r["step"] for r in records] == [1, 2, 3]  # the last: timing of step 3, at the end of the run
    assert set(records[0]["gradients"]) == {"1.weight", "1.bias", "4.weight", "4.bias"}
    assert "activations" not in records[0]  # no rule asked for them: no activation hooks
    assert records[-1]["timing"]["steps"][0][0] == 3 and "gradients" not in records[-1]
