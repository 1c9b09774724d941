"""Conformance of task adapters and strategies, the parts of the run engine that plugins supply."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Mapping
from typing import Any

import torch  # the checks run a tiny model; `import bestiary.testing` does not import this

from ..api import get_entry
from ..engine.strategy import Strategy
from ..engine.tasks import Task
from ..registry import Entry, LookupFailure
from ._support import Overrides, config, difference, resolve, seeded, step, task_info
from .report import ConformanceError, Report


def check_task(
    entry: Entry | str,
    /,
    *,
    info: Mapping[str, Any] | None = None,
    overrides: Overrides | None = None,
    **build_kwargs: Any,
) -> Report:
    """Check a task adapter: its default metrics exist for it, and its sample batches, batch sizes,
    device moves and model arguments are consistent."""
    entry = resolve("tasks", entry)
    cfg = config(entry, overrides, info=info, build=build_kwargs)
    report = Report(entry)
    if cfg.skip:
        report.skipped = str(cfg.skip)
        return report
    with step(entry, "build"):
        task = entry.build(**cfg.build)
    if not isinstance(task, Task):
        raise ConformanceError(
            entry,
            "build",
            f"the factory returned {type(task).__name__}, not a bestiary.engine.tasks.Task",
            "subclass bestiary.engine.tasks.Task and return an instance of it",
        )
    report.passed.append("build")
    if task.mode not in ("min", "max"):
        raise ConformanceError(entry, "monitor", f"mode is {task.mode!r}, not 'min' or 'max'")
    for name in task.default_metrics:
        try:
            metric = get_entry("metrics", name)
        except LookupFailure as exc:
            raise ConformanceError(
                entry,
                "default metrics",
                f"default metric {name!r} does not resolve: {exc}",
                "register the metric (register_metrics) in the same plugin, or name an installed one",
            ) from exc
        if metric.task not in (None, entry.name):
            raise ConformanceError(
                entry, "default metrics", f"default metric {name!r} is for task {metric.task!r}"
            )
    if task.monitor != "loss" and task.monitor not in task.default_metrics:
        raise ConformanceError(
            entry,
            "monitor",
            f"monitor {task.monitor!r} is neither 'loss' nor a default "
            f"metric ({', '.join(task.default_metrics) or 'none'})",
        )
    report.passed += ["default metrics", "monitor"]
    info = task_info(entry.name, cfg)
    with seeded(0):
        for n in (1, 3):
            with step(entry, "sample batch"):
                batch = task.sample_batch(info, n)
                got = task.batch_size(batch)
            if got != n:
                raise ConformanceError(
                    entry, "sample batch", f"batch_size() counts {got} in sample_batch(info, {n})"
                )
            with step(entry, "to_device"):
                moved = task.to_device(batch, torch.device("cpu"))
            diff = difference(batch, moved, "batch")
            if diff:
                raise ConformanceError(entry, "to_device", f"moving a batch to the CPU changed it: {diff}")
    report.passed += ["sample batch", "to_device"]
    with step(
        entry, "model kwargs", "model_kwargs(info) must return a dict of JSON values (saved in model.json)"
    ):
        kwargs = task.model_kwargs(info)
        if not isinstance(kwargs, dict):
            raise TypeError(f"model_kwargs returned {type(kwargs).__name__}")
        json.dumps(kwargs)
    report.passed.append("model kwargs")
    return report


def check_strategy(entry: Entry | str, /, *, overrides: Overrides | None = None, **options: Any) -> Report:
    """Set a strategy up on the CPU, prepare a tiny model, run one forward/backward and optimizer step.

    Strategies whose ``metadata["min_world_size"]`` exceeds 1 are skipped: they need several
    processes (check them under ``torchrun``).
    """
    entry = resolve("strategies", entry)
    cfg = config(entry, overrides, build=options)
    report = Report(entry)
    min_world = entry.metadata.get("min_world_size", 1)
    if cfg.skip or (isinstance(min_world, int) and min_world > 1):
        report.skipped = str(cfg.skip or f"needs {min_world} processes; check it under torchrun")
        return report
    with step(entry, "build"):
        strategy = entry.build(**cfg.build)
    if not isinstance(strategy, Strategy):
        raise ConformanceError(
            entry,
            "build",
            f"the factory returned {type(strategy).__name__}, not a bestiary.engine.strategy.Strategy",
            "subclass bestiary.engine.strategy.Strategy and return an instance of it",
        )
    report.passed.append("build")
    with step(entry, "setup"):
        strategy.setup("cpu")
    try:
        if strategy.world_size != 1:
            report.skipped = f"runs with world size {strategy.world_size} here; the check needs one process"
            return report
        report.passed.append("setup")
        _step_strategy(entry, strategy, report)
    finally:
        with step(entry, "teardown"):
            strategy.teardown()
    report.passed.append("teardown")
    return report


def _step_strategy(entry: Entry, strategy: Strategy, report: Report) -> None:
    def loss_fn(model: torch.nn.Module, batch: Any) -> tuple[torch.Tensor, Any]:
        out = model(batch[0])
        return ((out - batch[1]) ** 2).mean(), out

    with seeded(0):
        dataset = torch.utils.data.TensorDataset(torch.randn(8, 4), torch.randn(8, 2))
        with step(entry, "prepare model"):
            model = strategy.prepare_model(torch.nn.Linear(4, 2))
            optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
        with step(entry, "loader"):
            batches = list(strategy.loader(dataset, batch_size=4, shuffle=True, seed=0))
        seen = sum(len(b[0]) for b in batches)
        if seen != len(dataset):
            raise ConformanceError(
                entry, "loader", f"one process sees {seen} of {len(dataset)} samples per epoch"
            )
        before = [p.detach().clone() for p in model.parameters()]
        with step(entry, "forward_backward"):
            loss, _ = strategy.forward_backward(
                model, batches[0], loss_fn, autocast=contextlib.nullcontext(), scale=1.0
            )
        if not isinstance(loss, torch.Tensor) or loss.numel() != 1 or not bool(torch.isfinite(loss).all()):
            raise ConformanceError(
                entry, "forward_backward", f"returned loss {loss!r}, not a finite scalar tensor"
            )
        if all(p.grad is None for p in model.parameters()):
            raise ConformanceError(entry, "forward_backward", "no parameter received a gradient")
        with step(entry, "optimizer_step"):
            strategy.optimizer_step(model, optimizer)
        if all(torch.equal(b, p) for b, p in zip(before, model.parameters())):
            raise ConformanceError(entry, "optimizer_step", "the step changed no parameter")
        if any(p.grad is not None and bool(p.grad.any()) for p in model.parameters()):
            raise ConformanceError(
                entry,
                "optimizer_step",
                "gradients are left after the step",
                "optimizer_step must zero the gradients (optimizer.zero_grad)",
            )
        report.passed += ["prepare model", "loader", "forward_backward", "optimizer_step"]
        with step(entry, "model state"):
            state = strategy.model_state(model)
            other = strategy.prepare_model(torch.nn.Linear(4, 2))
            strategy.load_model_state(other, state)
            x = torch.randn(3, 4)
            diff = difference(strategy.unwrap(model)(x), strategy.unwrap(other)(x))
        if set(state) != {"weight", "bias"}:
            raise ConformanceError(
                entry,
                "model state",
                f"model_state() has keys {sorted(state)}, not the module's own ['bias', 'weight']",
                "return the unwrapped module's state",
            )
        if diff:
            raise ConformanceError(entry, "model state", f"a model loaded from model_state() differs: {diff}")
        total = torch.arange(3.0)
        with step(entry, "reduce"):
            reduced = strategy.reduce(total.clone())
        if not torch.equal(reduced, total):
            raise ConformanceError(
                entry, "reduce", f"reduce() over one process gave {reduced.tolist()} for {total.tolist()}"
            )
        report.passed += ["model state", "reduce"]
