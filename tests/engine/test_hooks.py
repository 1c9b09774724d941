"""Per-step hooks a third-party plugin implements, and the training state a checkpoint holds."""

from __future__ import annotations

import dataclasses
import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

import bestiary
from bestiary import hookimpl
from bestiary.engine.config import RunConfig
from bestiary.engine.state import TrainState
from bestiary.engine.stephooks import PER_STEP, StepHooks
from bestiary.engine.trainer import train

HERE = Path(__file__).parent


@pytest.fixture
def host(monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    monkeypatch.syspath_prepend(str(HERE))
    import toyzoo

    host = bestiary.reset_host(bestiary.PluginHost(autoload=False))
    host.add_plugin(toyzoo, "toyzoo")
    yield host
    bestiary.reset_host()


def config(tmp_path: Path, name: str, **kw: Any) -> RunConfig:
    # blobs: 144 training samples = 9 batches of 16 per epoch; accumulating 2, 5 optimizer steps
    base: dict[str, Any] = {"arch": "toy_mlp", "dataset": "blobs", "epochs": 2, "batch_size": 16, "accumulate": 2,
                            "log_every": 5, "checkpoint_every": 100, "run_dir": str(tmp_path / name), "quiet": True}
    base.update(kw)
    return RunConfig(**base)


class Counting:
    """Counts every per-step call and checks what each hook can see."""

    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()
        self.stepped = 0
        self.grads_seen: list[bool] = []
        self.losses_attached: list[bool] = []

    @hookimpl
    def on_batch_start(self, run: Any, step: int, batch: Any) -> None:
        self.calls["on_batch_start"] += 1
        assert batch[0].device == run.strategy.device

    @hookimpl
    def before_backward(self, run: Any, step: int, loss: Any) -> None:
        self.calls["before_backward"] += 1
        self.losses_attached.append(loss.requires_grad)

    @hookimpl
    def before_optimizer_step(self, run: Any, step: int, loss: Any) -> None:
        self.calls["before_optimizer_step"] += 1
        assert step == run.state.step  # the step about to happen is step + 1
        self.grads_seen.append(all(p.grad is not None for p in run.model.parameters()))

    @hookimpl
    def on_batch_end(self, run: Any, step: int, loss: Any, stepped: bool) -> None:
        self.calls["on_batch_end"] += 1
        self.stepped += stepped

    @hookimpl
    def on_step_end(self, run: Any, step: int, metrics: dict[str, float]) -> None:
        self.calls["on_step_end"] += 1


class Tagging:
    """A loader wrapper that counts the batches it passes on and records what it wrapped."""

    def __init__(self, tag: str) -> None:
        self.tag, self.batches, self.wrapped = tag, 0, []

    @hookimpl(wrapper=True)
    def wrap_train_loader(self, run: Any, loader: Any):  # type: ignore[no-untyped-def]
        inner = yield
        self.wrapped.append(getattr(inner, "tag", "loader"))
        return _Tagged(self, inner)


class _Tagged:
    def __init__(self, owner: Tagging, inner: Any) -> None:
        self.owner, self.inner, self.tag = owner, inner, owner.tag

    def __iter__(self):  # type: ignore[no-untyped-def]
        for batch in self.inner:
            self.owner.batches += 1
            yield batch


def test_every_per_step_hook_fires_on_every_batch_or_step(host: bestiary.PluginHost, tmp_path: Path) -> None:
    counting = Counting()
    host.add_plugin(counting, "counting")
    summary = train(config(tmp_path, "counted"), host=host)
    assert summary["status"] == "completed" and summary["steps"] == 10
    batches = 2 * 9
    assert counting.calls == Counter(on_batch_start=batches, before_backward=batches, on_batch_end=batches,
                                     before_optimizer_step=10, on_step_end=2)
    assert counting.stepped == 10
    assert counting.grads_seen == [True] * 10  # gradients are there before the optimizer step
    assert counting.losses_attached == [True] * batches  # the loss still has its graph


def test_loader_wrappers_compose_and_keep_the_batches(host: bestiary.PluginHost, tmp_path: Path) -> None:
    plain = train(config(tmp_path, "plain"), host=host)
    inner, outer = Tagging("inner"), Tagging("outer")
    host.add_plugin(inner, "inner")
    host.add_plugin(outer, "outer")  # registered later: called first, so it wraps the inner one
    wrapped = train(config(tmp_path, "wrapped"), host=host)
    assert inner.wrapped == ["loader", "loader"]  # once per epoch, around the strategy's loader
    assert outer.wrapped == ["inner", "inner"]  # around the inner plugin's wrapper
    assert inner.batches == outer.batches == 18
    # the same batches in the same order: the wrapped run ends with the same weights, bit for bit
    assert (Path(plain["run_dir"]) / "model" / "model.safetensors").read_bytes() == \
        (Path(wrapped["run_dir"]) / "model" / "model.safetensors").read_bytes()


def test_hooks_nobody_implements_are_never_called(host: bestiary.PluginHost) -> None:
    hooks = StepHooks(host.pm)
    assert all(getattr(hooks, name) is None for name in PER_STEP)
    loader = [1, 2, 3]
    assert hooks.loader(None, loader) is loader
    host.add_plugin(Counting(), "counting")
    hooks = StepHooks(host.pm)
    assert hooks.on_batch_end is not None and hooks.wrap_train_loader is None


def test_train_state_round_trips_and_matches_the_checkpoint(host: bestiary.PluginHost, tmp_path: Path) -> None:
    state = TrainState(step=7, epoch=1, batch_in_epoch=3, best=0.25, best_step=5, bad_evals=1, samples=112,
                       train_time=0.5, last_eval={"loss": 0.3, "accuracy": 0.9})
    copy = TrainState()
    copy.load_state_dict(json.loads(json.dumps(state.state_dict())))
    assert copy == state
    copy.last_eval["loss"] = 1.0
    assert state.last_eval["loss"] == 0.3  # loading copies the results
    with pytest.raises(ValueError, match="unknown training state keys"):
        TrainState().load_state_dict({"step": 1, "epochs": 2})
    assert TrainState().improves(1.0, "max") and state.improves(0.2, "min") and not state.improves(0.2, "max")
    # the keys a checkpoint stores are the state's fields
    run = config(tmp_path, "ckpt", epochs=1)
    summary = train(run, host=host)
    from bestiary.engine.optim import build_optimizer
    from bestiary.engine.rundir import RunDir
    from bestiary.engine.strategy import Strategy

    strategy = Strategy()
    strategy.setup("cpu")
    model = bestiary.build("architectures", "toy_mlp")
    optimizer = build_optimizer(model, run)
    extra = strategy.load_checkpoint(RunDir(summary["run_dir"]).latest_checkpoint(), model, optimizer)
    assert set(extra["state"]) == {f.name for f in dataclasses.fields(TrainState)}
    assert extra["state"]["step"] == summary["steps"]
