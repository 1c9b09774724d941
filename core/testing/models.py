"""Conformance of architectures: build, train one step, round-trip through save and load."""

from __future__ import annotations

import tempfile
from collections.abc import Mapping
from typing import Any

import torch  # the checks build and run models; `import bestiary.testing` does not import this

from ..api import get_entry
from ..engine.artifact import load_model, read_meta, save_model
from ..registry import Entry, LookupFailure
from ._support import (
    Overrides,
    build_task,
    config,
    difference,
    non_finite,
    resolve,
    seeded,
    shape,
    step,
    task_info,
)
from .outputs import check_outputs, forward_hint
from .report import ConformanceError, Report


def check_architecture(
    entry: Entry | str,
    /,
    *,
    info: Mapping[str, Any] | None = None,
    overrides: Overrides | None = None,
    **build_kwargs: Any,
) -> Report:
    """Build an architecture for a tiny batch of its task, train it one step, round-trip it.

    Model arguments come from ``task.model_kwargs(info)`` (``info``: the kit's small defaults per
    task, updated by the entry's ``metadata["conformance"]["info"]``, ``overrides`` and ``info``),
    updated by the conformance ``build`` settings and ``build_kwargs``. Steps: build, forward and
    backward through ``task.loss``, an SGD step that changes parameters, deterministic outputs in
    eval mode, ``task.predict``, and ``save_model`` / ``load_model`` giving identical outputs.
    """
    entry = resolve("architectures", entry)
    cfg = config(entry, overrides, info=info, build=build_kwargs)
    report = Report(entry)
    if cfg.skip:
        report.skipped = str(cfg.skip)
        return report
    task_name = cfg.task or entry.task
    task = build_task(entry, task_name)
    info = task_info(task_name, cfg)
    with step(entry, "model kwargs"):
        # the engine's own rule: task-derived arguments the factory accepts, then explicit ones
        from ..engine.run import architecture_kwargs

        kwargs = architecture_kwargs(entry, task.model_kwargs(info), dict(cfg.build))
    n = int(cfg.batch_size or 2)
    with seeded(0):
        with step(
            entry,
            "build",
            f"the factory was called with {kwargs}; give small settings in "
            "metadata={'conformance': {'build': {...}}}",
        ):
            model = entry.build(**kwargs)
        if not isinstance(model, torch.nn.Module):
            raise ConformanceError(
                entry,
                "build",
                f"the factory returned {type(model).__name__}, not a torch.nn.Module",
                "the factory must build and return the model instance (not its class, nor a tuple with it)",
            )
        params = [(name, p) for name, p in model.named_parameters() if p.requires_grad]
        if not params:
            raise ConformanceError(entry, "build", "the model has no trainable parameters")
        report.passed.append("build")

        model.train()
        batch = task.sample_batch(info, n)
        loss, outputs = _forward(entry, "forward", task, task_name, model, batch, info)
        check_outputs(entry, "forward", task_name, outputs, info, n, training=True)
        _check_loss(entry, loss)
        bad = non_finite(outputs)
        if bad:
            raise ConformanceError(entry, "forward", f"{bad} holds NaN or infinity on a random batch")
        with step(entry, "backward"):
            loss.backward()
        with_grad = [(name, p.grad) for name, p in params if p.grad is not None]
        if not with_grad:
            raise ConformanceError(
                entry,
                "backward",
                "no parameter received a gradient",
                "the loss must depend on the parameters (no torch.no_grad or .detach in forward)",
            )
        bad = next((name for name, g in with_grad if not bool(torch.isfinite(g).all())), None)
        if bad:
            raise ConformanceError(entry, "backward", f"the gradient of {bad!r} holds NaN or infinity")
        report.passed += ["forward", "backward"]

        before = [p.detach().clone() for _, p in params]
        with step(entry, "optimizer step"):
            optimizer = torch.optim.SGD([p for _, p in params], lr=0.01)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
        if all(torch.equal(b, p) for b, (_, p) in zip(before, params)):
            raise ConformanceError(entry, "optimizer step", "an SGD step changed no parameter")
        bad = next((name for name, p in params if not bool(torch.isfinite(p).all())), None)
        if bad:
            raise ConformanceError(
                entry, "optimizer step", f"parameter {bad!r} holds NaN or infinity after one step"
            )
        report.passed.append("optimizer step")

        model.eval()
        batch = task.sample_batch(info, n)
        with torch.no_grad():
            _, first = _forward(entry, "eval forward", task, task_name, model, batch, info)
            _, again = _forward(entry, "eval forward", task, task_name, model, batch, info)
        check_outputs(entry, "eval forward", task_name, first, info, n, training=False)
        diff = difference(first, again)
        if diff:
            raise ConformanceError(
                entry,
                "eval determinism",
                f"two forward passes in eval mode differ: {diff}",
                "randomness (dropout, noise) must be off in eval mode",
            )
        with torch.no_grad(), step(entry, "predict"):
            task.predict(model, batch)
        report.passed += ["eval determinism", "predict"]

        with tempfile.TemporaryDirectory(prefix="bestiary-conformance-") as tmp:
            meta = {"arch": entry.qualified_name, "model_kwargs": kwargs}
            with step(entry, "save", "model kwargs must be JSON values (model.json holds them)"):
                save_model(tmp, model.state_dict(), meta)
            torch.manual_seed(1)  # a fresh build must not happen to repeat the first one's random state
            with step(
                entry, "load", "load_model rebuilds the model from model.json and loads the saved weights"
            ):
                loaded = _load(entry, tmp)
            with torch.no_grad(), step(entry, "save/load round trip"):
                _, restored = task.loss(loaded, batch)
        diff = difference(first, restored)
        if diff:
            raise ConformanceError(
                entry,
                "save/load round trip",
                f"outputs differ after save_model/load_model: {diff}",
                "everything the outputs depend on must be in state_dict(): register tensors as parameters or "
                "persistent buffers, not as attributes or non-persistent buffers filled at random in __init__",
            )
        report.passed.append("save/load round trip")
    return report


def _forward(
    entry: Entry, check: str, task: Any, task_name: str | None, model: torch.nn.Module, batch: Any,
    info: Mapping[str, Any],
) -> tuple[Any, Any]:
    """``task.loss(model, batch)``; a failure names the broken forward contract when the model's
    output shows it (a forecaster returning a tensor fails inside the task, far from the cause)."""
    try:
        return task.loss(model, batch)
    except Exception as exc:
        hint = forward_hint(task_name, model, batch, info)
        raise ConformanceError(entry, check, f"{type(exc).__name__}: {exc}", hint) from exc


def _check_loss(entry: Entry, loss: Any) -> None:
    if not isinstance(loss, torch.Tensor) or loss.numel() != 1:
        raise ConformanceError(
            entry,
            "forward",
            f"the task's loss is {type(loss).__name__} "
            f"{shape(loss) if isinstance(loss, torch.Tensor) else ''}, not a scalar tensor",
            "a loss the model returns itself (out['loss']) must be reduced to one number, e.g. with .mean()",
        )
    if not bool(torch.isfinite(loss).all()):
        raise ConformanceError(entry, "forward", f"the loss is {loss.item()} on a random batch")
    if not loss.requires_grad:
        raise ConformanceError(
            entry,
            "forward",
            "the loss does not require grad",
            "the outputs must depend on the parameters (no torch.no_grad or .detach in forward)",
        )


def _load(entry: Entry, directory: str) -> torch.nn.Module:
    try:
        registered = get_entry("architectures", entry.qualified_name)
    except LookupFailure:
        registered = None
    if registered is not None:
        return load_model(directory)
    # Not in the process-wide registry (an Entry made by hand): rebuild the way load_model does.
    from safetensors.torch import load_file  # only this fallback reads the weights itself

    path, meta = read_meta(directory)
    model = entry.build(**meta["model_kwargs"])
    model.load_state_dict(load_file(str(path / "model.safetensors")))
    return model.eval()
