"""The run engine end to end: real training of tiny models, real signals, real files."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

import bestiary
from bestiary.engine import checkpoint as ckpt
from bestiary.engine.artifact import load_model
from bestiary.engine.config import RunConfig
from bestiary.engine.optim import build_optimizer, build_scheduler
from bestiary.engine.trainer import train
from bestiary.errors import CheckpointError, ConfigError, TaskMismatchError

HERE = Path(__file__).parent


@pytest.fixture(autouse=True)
def toy_host(monkeypatch):
    monkeypatch.syspath_prepend(str(HERE))
    import toyzoo

    host = bestiary.reset_host(bestiary.PluginHost(autoload=False))
    host.add_plugin(toyzoo, "toyzoo")
    yield host
    bestiary.reset_host()


def cfg(tmp_path: Path, name: str = "run", **kw) -> RunConfig:
    base = {"arch": "toy_mlp", "dataset": "blobs", "epochs": 3, "batch_size": 16, "log_every": 1, "checkpoint_every": 4,
                "run_dir": str(tmp_path / name), "quiet": True}
    base.update(kw)
    return RunConfig(**base)


def weights(run_dir: Path) -> bytes:
    return (Path(run_dir) / "model" / "model.safetensors").read_bytes()


def subprocess_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(HERE), env.get("PYTHONPATH", "")])
    env["BESTIARY_PLUGINS"] = "toyzoo"
    env["BESTIARY_DISABLE_PLUGIN_AUTOLOAD"] = "1"
    return env


SCRIPT = textwrap.dedent(
    """
    import os, signal, sys
    import bestiary
    from bestiary import hookimpl
    from bestiary.engine.config import RunConfig
    from bestiary.engine.trainer import train

    sig, at = sys.argv[2], int(sys.argv[3])

    class Interrupt:
        @hookimpl
        def on_step_end(self, run, step, metrics):
            if step == at:
                os.kill(os.getpid(), getattr(signal, sig))

    bestiary.get_host().add_plugin(Interrupt(), "interrupt")
    config = RunConfig(arch="toy_mlp", dataset="blobs", epochs=3, batch_size=16, log_every=1,
                       checkpoint_every=4, accumulate=int(os.environ.get("ACCUMULATE", "1")),
                       run_dir=sys.argv[1], quiet=True)
    summary = train(config)
    print(summary["status"], summary["steps"])
    """
)


def run_interrupted(run_dir: Path, sig: str, at: int, accumulate: int = 1) -> subprocess.CompletedProcess:
    env = subprocess_env()
    env["ACCUMULATE"] = str(accumulate)
    return subprocess.run([sys.executable, "-c", SCRIPT, str(run_dir), sig, str(at)], env=env,
                          capture_output=True, text=True, timeout=120)


def test_same_command_twice_gives_identical_runs(tmp_path):
    a = train(cfg(tmp_path, "a"))
    b = train(cfg(tmp_path, "b"))
    assert weights(a["run_dir"]) == weights(b["run_dir"])
    assert a["final"] == b["final"]


@pytest.mark.slow
@pytest.mark.parametrize("kill_at,accumulate", [(6, 1), (8, 1), (23, 1), (5, 2)])
def test_sigkill_then_resume_is_bitwise_exact(tmp_path, kill_at, accumulate):
    reference = train(cfg(tmp_path, "reference", accumulate=accumulate))
    run_dir = tmp_path / "killed"
    proc = run_interrupted(run_dir, "SIGKILL", kill_at, accumulate)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    assert not (run_dir / "model").exists()
    resumed = train(resume=run_dir)
    assert resumed["steps"] == reference["steps"]
    assert weights(run_dir) == weights(reference["run_dir"])
    ref_evals = [r for r in bestiary.engine.rundir.RunDir(reference["run_dir"]).metrics() if r["split"] == "validation"]
    got_evals = [r for r in bestiary.engine.rundir.RunDir(run_dir).metrics() if r["split"] == "validation"]
    strip = lambda rows: [{k: v for k, v in r.items() if k != "time"} for r in rows]  # noqa: E731
    assert strip(got_evals) == strip(ref_evals)
    steps = [r["step"] for r in bestiary.engine.rundir.RunDir(run_dir).metrics() if r["split"] == "train"]
    assert steps == sorted(set(steps)), "replayed steps must not be logged twice"


@pytest.mark.slow
def test_sigterm_checkpoints_and_exits_cleanly_then_resumes_exactly(tmp_path):
    reference = train(cfg(tmp_path, "reference"))
    run_dir = tmp_path / "terminated"
    proc = run_interrupted(run_dir, "SIGTERM", 10)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["interrupted", "10"]
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "interrupted"
    assert (run_dir / "checkpoints" / "step-00000010").is_dir()
    resumed = train(resume=run_dir)
    assert resumed["status"] == "completed"
    assert weights(run_dir) == weights(reference["run_dir"])


@pytest.mark.slow
def test_cli_train_sigterm_exit_code_and_resume(tmp_path):
    run_dir = tmp_path / "cli"
    env = subprocess_env()
    proc = subprocess.Popen([sys.executable, "-m", "bestiary", "train", "toy_mlp", "--dataset", "blobs",
                             "--epochs", "100000", "--batch-size", "16", "--log-every", "1", "--run-dir", str(run_dir)],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    metrics = run_dir / "metrics.jsonl"
    deadline = __import__("time").monotonic() + 60
    while not (metrics.exists() and metrics.stat().st_size > 0):
        assert __import__("time").monotonic() < deadline, "training never started"
        __import__("time").sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    _out, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, err
    assert f"bestiary train --resume {run_dir}" in err
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "interrupted"
    assert (run_dir / "checkpoints" / f"step-{summary['steps']:08d}").is_dir()


def test_truncated_or_tampered_checkpoint_is_refused(tmp_path):
    summary = train(cfg(tmp_path, epochs=1))
    latest = sorted((Path(summary["run_dir"]) / "checkpoints").iterdir())[-1]
    model_file = latest / "model.safetensors"
    data = model_file.read_bytes()
    model_file.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError) as err:
        ckpt.load(latest)
    assert str(err.value) == (
        f"checkpoint {latest} is corrupt: model.safetensors does not match its manifest "
        f"({len(data) // 2} bytes, expected {len(data)}); it was truncated or modified. "
        "Delete the folder to resume from an earlier checkpoint."
    )
    tampered = bytearray(data)
    tampered[-1] ^= 0xFF
    model_file.write_bytes(bytes(tampered))
    (Path(summary["run_dir"]) / "summary.json").unlink()  # as if the run had been killed
    with pytest.raises(CheckpointError, match="truncated or modified"):
        train(resume=summary["run_dir"])
    state = latest / "state.json"
    model_file.write_bytes(data)
    state.write_text(state.read_text().replace("0", "1", 1))
    with pytest.raises(CheckpointError, match="state.json does not match"):
        ckpt.load(latest)


def test_a_finished_run_is_not_resumed(tmp_path):
    summary = train(cfg(tmp_path, epochs=1))
    before = (Path(summary["run_dir"]) / "metrics.jsonl").read_text()
    with pytest.raises(ConfigError, match="already completed; there is nothing to resume"):
        train(resume=summary["run_dir"])
    assert (Path(summary["run_dir"]) / "metrics.jsonl").read_text() == before


def test_checkpoint_round_trip_keeps_types(tmp_path):
    extra = {"tuple": (1, 2.5), "list": [1, None], "nested": {3: torch.arange(3)}, "nan": float("inf")}
    ckpt.save(tmp_path / "c", model={"w": torch.ones(2)}, optimizer={"state": {}}, extra=extra)
    loaded = ckpt.load(tmp_path / "c")
    assert loaded.extra["tuple"] == (1, 2.5) and loaded.extra["list"] == [1, None]
    assert torch.equal(loaded.extra["nested"][3], torch.arange(3))
    assert not list(tmp_path.glob(".c.tmp-*")), "temporary directory left behind"


def test_keeps_last_k_checkpoints(tmp_path):
    summary = train(cfg(tmp_path, checkpoint_every=2, keep_checkpoints=3))
    names = sorted(p.name for p in (Path(summary["run_dir"]) / "checkpoints").iterdir())
    assert names == ["step-00000024", "step-00000026", "step-00000027"]


def test_task_mismatch_fails_before_any_training(tmp_path):
    with pytest.raises(TaskMismatchError) as err:
        train(cfg(tmp_path, dataset="sine"))
    assert str(err.value) == (
        "architecture 'toy_mlp' is for image-classification but dataset 'sine' is for forecasting; "
        "pick a dataset of the same task: `bestiary list datasets --task image-classification`"
    )
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    "change,message",
    [
        ({"precision": "fp8"}, "config field 'precision': 'fp8' is not one of fp32, bf16, fp16"),
        ({"batch_size": 0}, "config field 'batch_size': must be >= 1, got 0"),
        ({"lr": -1.0}, "config field 'lr': must be > 0, got -1.0"),
        ({"epochs": "3"}, "config field 'epochs': expected int, got '3'"),
        ({"label_smoothing": 1.0}, "config field 'label_smoothing': must be in [0, 1), got 1.0"),
        ({"device": "tpu"}, "config field 'device': 'tpu' is not one of auto, cpu, cuda, cuda:N"),
    ],
)
def test_config_errors_name_field_value_and_choices(change, message):
    with pytest.raises(ConfigError) as err:
        RunConfig(arch="a", dataset="d", **change)
    assert str(err.value) == message


def test_config_from_toml_flags_and_set(tmp_path):
    file = tmp_path / "run.toml"
    file.write_text('arch = "toy_mlp"\ndataset = "blobs"\nepochs = 5\nlr = 0.5\n[model]\nhidden = 8\n')
    config = RunConfig.load(file, {"epochs": 2}, ["model.dropout=0.0", "optimizer=sgd"])
    assert (config.epochs, config.lr, config.optimizer) == (2, 0.5, "sgd")
    assert config.model == {"hidden": 8, "dropout": 0.0}
    with pytest.raises(ConfigError, match="Did you mean 'epochs'"):
        RunConfig.load(file, sets=["epoch=3"])


def test_gradient_accumulation_matches_the_large_batch(tmp_path):
    common = {"model": {"dropout": 0.0}, "epochs": 1, "checkpoint_every": None, "optimizer": "sgd", "lr": 0.05}
    big = train(cfg(tmp_path, "big", batch_size=16, **common))
    acc = train(cfg(tmp_path, "acc", batch_size=8, accumulate=2, **common))
    assert big["steps"] == acc["steps"] == 9
    a = load_model(big["run_dir"]).state_dict()
    b = load_model(acc["run_dir"]).state_dict()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-5, atol=1e-6)


def test_early_stopping_and_max_steps(tmp_path):
    stopped = train(cfg(tmp_path, "stop", epochs=50, monitor="loss", mode="max", early_stopping=2))
    assert stopped["status"] == "stopped"
    assert stopped["epochs"] == 3  # the first evaluation sets the best; two without improvement stop
    capped = train(cfg(tmp_path, "cap", epochs=50, max_steps=7))
    assert capped["steps"] == 7 and capped["status"] == "completed"


def test_bf16_channels_last_clipping_and_smoothing_train(tmp_path):
    summary = train(cfg(tmp_path, arch="toy_cnn", precision="bf16", channels_last=True, clip_grad_norm=0.5,
                        label_smoothing=0.1, optimizer="sgd", schedule="onecycle"))
    assert summary["status"] == "completed"
    records = [json.loads(line) for line in (Path(summary["run_dir"]) / "metrics.jsonl").read_text().splitlines()]
    train_rows = [r for r in records if r["split"] == "train"]
    assert all(r["grad_norm"] >= 0 and r["loss"] == r["loss"] for r in train_rows)


def test_forecasting_runs_through_the_same_engine(tmp_path):
    summary = train(cfg(tmp_path, arch="toy_linear", dataset="sine", epochs=4, lr=0.01))
    assert set(summary["final"]) == {"loss", "mae", "rmse", "mase", "mean_wql"}
    assert summary["best"]["metric"] == "mean_wql" and summary["best"]["mode"] == "min"
    assert summary["final"]["mae"] < 1.0 and summary["final"]["mase"] > 0


def test_schedules_and_warmup():
    model = torch.nn.Linear(2, 2)

    def lrs(**kw):
        c = RunConfig(arch="a", dataset="d", lr=1.0, **kw)
        opt = build_optimizer(model, c)
        sched = build_scheduler(opt, c, 10)
        out = []
        for _ in range(10):
            out.append(opt.param_groups[0]["lr"])
            opt.step()
            sched.step()
        return out

    warm = lrs(schedule="constant", warmup_steps=3)
    assert warm[:4] == [0.25, 0.5, 0.75, 1.0] and warm[-1] == 1.0
    cosine = lrs(schedule="cosine")
    assert cosine[0] == 1.0 and cosine[-1] < 0.03 and cosine == sorted(cosine, reverse=True)
    assert lrs(schedule="step", step_size=4, gamma=0.5)[::4] == [1.0, 0.5, 0.25]
    onecycle = lrs(schedule="onecycle")
    assert max(onecycle) == pytest.approx(1.0, rel=1e-3) and onecycle[0] < 0.1


def test_run_directory_layout_and_load_model(tmp_path):
    summary = train(cfg(tmp_path))
    run = Path(summary["run_dir"])
    config = json.loads((run / "config.json").read_text())
    assert config["status"] == "completed"
    assert config["resolved"]["arch"] == "toyzoo:toy_mlp"
    assert config["environment"]["torch"] == torch.__version__
    assert "toyzoo" in config["environment"]["plugins"]
    assert json.loads((run / "summary.json").read_text())["steps"] == 27
    model = bestiary.load_model(run)
    assert torch.equal(model(torch.ones(2, 1, 4, 4)), load_model(run / "model")(torch.ones(2, 1, 4, 4)))
    x = torch.randn(4, 1, 4, 4)
    assert model(x).shape == (4, 3)
    rows = bestiary.engine.index.RunsIndex(run.parent).rows()
    assert [r["id"] for r in rows] == [run.name] and rows[0]["status"] == "completed"


@pytest.mark.slow
def test_cli_train_evaluate_predict(tmp_path):
    env = subprocess_env()

    def cli(*args):
        return subprocess.run([sys.executable, "-m", "bestiary", *args], env=env, capture_output=True, text=True, timeout=120)

    run_dir = tmp_path / "cli"
    done = cli("train", "toy_mlp", "--dataset", "blobs", "--epochs", "2", "--batch-size", "16", "--quiet",
               "--run-dir", str(run_dir), "--set", "model.hidden=8", "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["status"] == "completed"
    evaluated = cli("evaluate", str(run_dir), "--json")
    assert evaluated.returncode == 0, evaluated.stderr
    result = json.loads(evaluated.stdout)
    assert result["split"] == "test" and 0 <= result["accuracy"] <= 1
    import numpy as np

    np.save(tmp_path / "x.npy", np.random.default_rng(0).normal(size=(5, 1, 4, 4)).astype("float32"))
    predicted = cli("predict", str(run_dir), "--input", str(tmp_path / "x.npy"), "--output", str(tmp_path / "p.jsonl"))
    assert predicted.returncode == 0, predicted.stderr
    rows = [json.loads(line) for line in (tmp_path / "p.jsonl").read_text().splitlines()]
    assert [r["index"] for r in rows] == [0, 1, 2, 3, 4] and all(0 <= r["probability"] <= 1 for r in rows)
    bad = cli("train", "toy_mlp", "--dataset", "sine")
    assert bad.returncode == 2 and "pick a dataset of the same task" in bad.stderr
    unknown = cli("train", "toy_mpl", "--dataset", "blobs")
    assert unknown.returncode == 2 and "Did you mean: toy_mlp" in unknown.stderr
    missing = cli("evaluate", str(tmp_path))
    assert missing.returncode == 1 and "holds no model" in missing.stderr
    mixed = cli("train", "--resume", str(run_dir), "--max-steps", "3")
    assert mixed.returncode == 2 and "drop --max-steps" in mixed.stderr


@pytest.mark.slow
def test_compiled_training_matches_eager_closely(tmp_path):
    eager = train(cfg(tmp_path, "eager", epochs=1, model={"dropout": 0.0}, checkpoint_every=None))
    compiled = train(cfg(tmp_path, "compiled", epochs=1, model={"dropout": 0.0}, checkpoint_every=None, compile=True))
    assert compiled["status"] == "completed"
    a, b = load_model(eager["run_dir"]).state_dict(), load_model(compiled["run_dir"]).state_dict()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-4, atol=1e-5)


class _StopAt:
    """Asks the run to stop from a lifecycle hook, as a pruner or a debugger rule does."""

    def __init__(self, step: int | None = None, after_evaluations: int | None = None) -> None:
        self.step, self.after, self.evaluations = step, after_evaluations, 0

    @bestiary.hookimpl
    def on_step_end(self, run, step, metrics):
        if step == self.step:
            run.request_stop(f"asked at step {step}")
            run.request_stop("a later reason is ignored")

    @bestiary.hookimpl
    def on_evaluation_end(self, run, step, split, metrics):
        self.evaluations += 1
        if self.evaluations == self.after:
            run.request_stop(f"asked after evaluation {self.evaluations}")


def test_a_hook_can_stop_a_run_at_a_step_with_checkpoint_and_model(tmp_path, toy_host):
    toy_host.add_plugin(_StopAt(step=5), "stopper")
    summary = train(cfg(tmp_path))
    assert summary["status"] == "stopped"
    assert summary["steps"] == 5
    assert summary["stop_reason"] == "asked at step 5"
    run_dir = Path(summary["run_dir"])
    assert (run_dir / "model" / "model.safetensors").exists()
    assert bestiary.engine.rundir.RunDir(run_dir).latest_checkpoint().name.endswith("5")
    with pytest.raises(ConfigError, match="stopped"):
        train(resume=run_dir)


def test_a_hook_can_stop_a_run_after_an_evaluation(tmp_path, toy_host):
    toy_host.add_plugin(_StopAt(after_evaluations=1), "stopper")
    summary = train(cfg(tmp_path))
    assert summary["status"] == "stopped"
    assert summary["epochs"] == 1
    assert summary["stop_reason"] == "asked after evaluation 1"


def test_early_stopping_records_its_reason(tmp_path):
    summary = train(cfg(tmp_path, epochs=8, early_stopping=1, lr=1e-12))  # too small to change the metric
    assert summary["status"] == "stopped"
    assert summary["epochs"] == 2
    assert summary["stop_reason"] == "accuracy did not improve for 1 evaluations"
