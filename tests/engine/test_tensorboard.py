"""The built-in tensorboard plugin, read back from real event files of tiny toy runs."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

import bestiary
from bestiary import hookimpl

ENGINE_TESTS = Path(__file__).resolve().parent

# 144 training samples / 16 = 9 steps per epoch, 18 in all; evaluations at steps 9 and 18.
BASE = {"arch": "toy_mlp", "dataset": "blobs", "epochs": 2, "batch_size": 16, "quiet": True}


@pytest.fixture
def toy_host(monkeypatch: pytest.MonkeyPatch) -> bestiary.PluginHost:
    monkeypatch.syspath_prepend(str(ENGINE_TESTS))
    monkeypatch.delenv("BESTIARY_TENSORBOARD", raising=False)
    import toyzoo

    bestiary.reset_host()
    host = bestiary.get_host()
    host.add_plugin(toyzoo, "toyzoo")
    return host


def train(**options: Any) -> dict[str, Any]:
    from bestiary.engine.config import RunConfig
    from bestiary.engine.trainer import train

    return train(RunConfig(**{**BASE, **options}))


def resume(run_dir: Path) -> dict[str, Any]:
    from bestiary.engine.trainer import train

    return train(resume=run_dir)


def events(run_dir: Path) -> Any:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(run_dir / "tensorboard"))
    acc.Reload()
    return acc


def scalars(acc: Any) -> dict[str, list[tuple[int, float]]]:
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


def hparams_data(acc: Any) -> dict[str, Any]:
    from tensorboard.plugins.hparams.plugin_data_pb2 import HParamsPluginData

    content = acc.PluginTagToContent("hparams")
    return {tag: HParamsPluginData.FromString(data) for tag, data in content.items()}


def session_status(acc: Any) -> str:
    from tensorboard.plugins.hparams.api_pb2 import Status

    return Status.Name(hparams_data(acc)["_hparams_/session_end_info"].session_end_info.status)


def logged(run_dir: Path, split: str) -> dict[int, dict[str, Any]]:
    """The run's metrics.jsonl records of one split, by step."""
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    return {r["step"]: r for r in map(json.loads, lines) if r["split"] == split}


def test_scalars_and_hparams_of_a_run(toy_host: bestiary.PluginHost, tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    summary = train(log_every=2, lr=0.01, clip_grad_norm=1.0, run_dir=str(run_dir))

    files = list((run_dir / "tensorboard").iterdir())
    assert len(files) == 1 and files[0].name.startswith("events.out.tfevents."), files
    acc = events(run_dir)
    found = scalars(acc)
    assert set(found) == {"train/loss", "train/lr", "train/samples_per_s", "train/grad_norm",
                          "validation/loss", "validation/accuracy", "best/accuracy"}
    train_log, validation_log = logged(run_dir, "train"), logged(run_dir, "validation")
    for name in ("loss", "lr", "samples_per_s", "grad_norm"):
        assert [s for s, _ in found[f"train/{name}"]] == [2, 4, 6, 8, 10, 12, 14, 16, 18]
        assert [v for _, v in found[f"train/{name}"]] == pytest.approx(
            [train_log[s][name] for s, _ in found[f"train/{name}"]], rel=1e-6, abs=1e-12)
    for name in ("loss", "accuracy"):
        assert [s for s, _ in found[f"validation/{name}"]] == [9, 18]
        assert [v for _, v in found[f"validation/{name}"]] == pytest.approx(
            [validation_log[9][name], validation_log[18][name]], rel=1e-6)
    assert found["validation/accuracy"][-1][1] == pytest.approx(summary["final"]["accuracy"], rel=1e-6)
    saved = json.loads((run_dir / "summary.json").read_text())
    assert found["validation/accuracy"][-1][1] == pytest.approx(saved["final"]["accuracy"], rel=1e-6)
    best = saved["best"]
    assert found["best/accuracy"] == [(best["step"], pytest.approx(best["value"], rel=1e-6))]

    # HParams: experiment, session start and end, all in the run's own event file.
    data = hparams_data(acc)
    assert set(data) == {"_hparams_/experiment", "_hparams_/session_start_info", "_hparams_/session_end_info"}
    experiment = data["_hparams_/experiment"].experiment
    metric_tags = {m.name.tag for m in experiment.metric_infos}
    assert metric_tags == {"validation/loss", "validation/accuracy", "best/accuracy"}
    names = {h.name for h in experiment.hparam_infos}
    assert {"arch", "dataset", "lr", "batch_size", "clip_grad_norm", "task"} <= names
    start = data["_hparams_/session_start_info"].session_start_info.hparams
    assert start["arch"].string_value == "toy_mlp"
    assert start["task"].string_value == "image-classification"
    assert start["batch_size"].number_value == 16
    assert start["lr"].number_value == pytest.approx(0.01)
    assert session_status(acc) == "STATUS_SUCCESS"


def test_disabled_by_environment(toy_host: bestiary.PluginHost, tmp_path: Path,
                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BESTIARY_TENSORBOARD", "0")
    train(log_every=3, max_steps=3, run_dir=str(tmp_path / "run"))
    assert (tmp_path / "run" / "summary.json").exists()
    assert not (tmp_path / "run" / "tensorboard").exists()


class _Terminate:
    """Sends this process SIGTERM at one step: the trainer checkpoints and ends as interrupted."""

    def __init__(self, step: int) -> None:
        self.step = step

    @hookimpl
    def on_step_end(self, run: Any, step: int, metrics: dict[str, float]) -> None:
        if step == self.step:
            os.kill(os.getpid(), signal.SIGTERM)


def test_interrupted_run_resumed(toy_host: bestiary.PluginHost, tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    toy_host.add_plugin(_Terminate(6), "terminate")
    assert train(log_every=3, run_dir=str(run_dir))["status"] == "interrupted"
    acc = events(run_dir)
    assert [e.step for e in acc.Scalars("train/loss")] == [3, 6]
    with pytest.raises(KeyError):  # no session yet: TensorBoard keeps the first one a run writes
        acc.PluginTagToContent("hparams")

    bestiary.reset_host().add_plugin(sys.modules["toyzoo"], "toyzoo")
    assert resume(run_dir)["status"] == "completed"
    acc = events(run_dir)
    found = scalars(acc)
    assert [s for s, _ in found["train/loss"]] == [3, 6, 9, 12, 15, 18]
    assert [s for s, _ in found["validation/accuracy"]] == [9, 18]
    train_log = logged(run_dir, "train")
    expected = [train_log[s]["loss"] for s in (3, 6, 9, 12, 15, 18)]
    assert [v for _, v in found["train/loss"]] == pytest.approx(expected, rel=1e-6)
    assert session_status(acc) == "STATUS_SUCCESS"


KILLED_RUN = """
import os, signal, sys, time

import bestiary
import toyzoo
from bestiary import hookimpl
from bestiary.engine.config import RunConfig
from bestiary.engine.trainer import train


class Killer:
    @hookimpl(trylast=True)  # after the tensorboard plugin has queued this step's scalars
    def on_step_end(self, run, step, metrics):
        if step == 15:
            time.sleep(0.2)  # let the event writer's thread put the queued steps on disk
            os.kill(os.getpid(), signal.SIGKILL)


host = bestiary.get_host()
host.add_plugin(toyzoo, "toyzoo")
host.add_plugin(Killer(), "killer")
train(RunConfig(**{BASE!r}, log_every=3, checkpoint_every=9, run_dir=sys.argv[1]))
"""


def test_killed_run_resumed_without_duplicate_steps(toy_host: bestiary.PluginHost, tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    script = tmp_path / "killed_run.py"
    script.write_text(textwrap.dedent(KILLED_RUN).replace("{BASE!r}", repr(BASE)))
    env = {k: v for k, v in os.environ.items() if not k.startswith("BESTIARY_")}
    env["PYTHONPATH"] = str(ENGINE_TESTS)
    proc = subprocess.run([sys.executable, str(script), str(run_dir)], env=env, capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    assert [p.name for p in (run_dir / "checkpoints").iterdir()] == ["step-00000009"]
    killed = scalars(events(run_dir))
    # The killed process got past its checkpoint (step 9): its later steps are what a resume replays.
    assert [s for s, _ in killed["train/loss"]][:4] == [3, 6, 9, 12]
    assert [s for s, _ in killed["validation/loss"]] == [9]

    summary = resume(run_dir)
    assert summary["status"] == "completed"
    assert len(list((run_dir / "tensorboard").iterdir())) == 2
    acc = events(run_dir)
    found = scalars(acc)
    for name in ("loss", "lr", "samples_per_s"):
        assert [s for s, _ in found[f"train/{name}"]] == [3, 6, 9, 12, 15, 18], name
    for name in ("loss", "accuracy"):
        assert [s for s, _ in found[f"validation/{name}"]] == [9, 18], name
    train_log = logged(run_dir, "train")
    expected = [train_log[s]["loss"] for s in (3, 6, 9, 12, 15, 18)]
    assert [v for _, v in found["train/loss"]] == pytest.approx(expected, rel=1e-6)
    assert found["validation/accuracy"][-1][1] == pytest.approx(summary["final"]["accuracy"], rel=1e-6)
    assert session_status(acc) == "STATUS_SUCCESS"


def test_loading_the_plugin_imports_no_torch() -> None:
    code = ("import sys, bestiary; host = bestiary.PluginHost(autoload=False); "
            "info = {p.name: p for p in host.plugins}['tensorboard']; "
            "assert info.status == 'ok', info.error; "
            "assert 'on_step_end' in info.hooks, info.hooks; "
            "assert not [m for m in sys.modules if m == 'torch' or m.startswith('tensorboard')], 'imported'")
    env = {k: v for k, v in os.environ.items() if not k.startswith("BESTIARY_")}
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
