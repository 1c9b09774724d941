"""Resolving a config into built parts, and the context lifecycle hooks receive."""

from __future__ import annotations

import contextlib
import dataclasses
import inspect
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch  # builds models and data; only runs import this module

from ..errors import ConfigError, TaskMismatchError
from ..host import PluginHost, get_host
from ..registry import Entry
from .config import RunConfig
from .data import Data
from .metrics import Metric
from .strategy import Strategy
from .tasks import Task


@dataclass
class Parts:
    """The registry entries a config names, checked against each other before anything is built."""

    arch: Entry
    dataset: Entry
    strategy: Entry
    task: Entry
    metrics: list[Entry]


def resolve(cfg: RunConfig, host: PluginHost | None = None) -> Parts:
    """Look every name of ``cfg`` up and check that their tasks agree."""
    registry = (host or get_host()).registry
    arch = registry.table("architectures").get(cfg.arch)
    dataset = registry.table("datasets").get(cfg.dataset)
    strategy = _check_parallel(registry, arch, registry.table("strategies").get(cfg.strategy))
    task_name = arch.task or dataset.task
    if task_name is None:
        raise TaskMismatchError(
            f"neither architecture {arch.qualified_name!r} nor dataset {dataset.qualified_name!r} declares a task"
        )
    for entry in (arch, dataset):
        if entry.task is not None and entry.task != task_name:
            raise TaskMismatchError(
                f"architecture {arch.name!r} is for {arch.task} but dataset {dataset.name!r} is for "
                f"{dataset.task}; pick a dataset of the same task: `bestiary list datasets --task {arch.task}`"
            )
    task = registry.table("tasks").get(task_name)
    names = cfg.metrics if cfg.metrics is not None else list(task.build().default_metrics)
    metrics = [registry.table("metrics").get(n) for n in names]
    for m in metrics:
        if m.task is not None and m.task != task_name:
            raise TaskMismatchError(
                f"metric {m.name!r} is for {m.task}, not {task_name}; "
                f"see `bestiary list metrics --task {task_name}`"
            )
    return Parts(arch, dataset, strategy, task, metrics)


def _check_parallel(registry: Any, arch: Entry, strategy: Entry) -> Entry:
    """Refuse a strategy whose ``metadata["requires"]`` (``"tensor"``, ``"pipeline"``) the
    architecture's ``metadata["parallel"]`` lacks (a key ``tensor`` or ``tensor_*``, such as
    ``tensor_plan``); otherwise hand that metadata to the strategy factory as its ``parallel``
    option (tensor plans, split points: strategies hold no model-specific code)."""

    def satisfies(parallel: Any, needs: Any) -> bool:
        return needs is None or any(k == needs or k.startswith(f"{needs}_") for k in (parallel or {}))

    needs = strategy.metadata.get("requires")
    supported = dict(arch.metadata.get("parallel") or {})
    if needs is None:
        # strategies that can use a layout without requiring one (fsdp's blocks) get it too
        try:
            accepts = "parallel" in inspect.signature(strategy.load()).parameters
        except (TypeError, ValueError):
            accepts = False
        return dataclasses.replace(strategy, defaults={**strategy.defaults, "parallel": supported}) if supported and accepts else strategy
    if not satisfies(supported, needs):
        usable = [s.name for s in registry.table("strategies") if satisfies(supported, s.metadata.get("requires"))]
        archs = [a.name for a in registry.table("architectures") if satisfies(a.metadata.get("parallel"), needs)]
        shown = ", ".join(archs[:12]) + (f" and {len(archs) - 12} more" if len(archs) > 12 else "")
        raise ConfigError(
            f"architecture {arch.name!r} cannot use strategy {strategy.name!r}: it declares no {needs} layout "
            f"(a {needs!r} or '{needs}_*' key in its metadata['parallel']); strategies it can use: "
            f"{', '.join(usable)}; architectures that declare one: {shown or 'none'}"
        )
    return dataclasses.replace(strategy, defaults={**strategy.defaults, "parallel": supported})


def architecture_kwargs(entry: Entry, suggested: dict[str, Any], explicit: dict[str, Any]) -> dict[str, Any]:
    """Factory arguments for an architecture: what the task derives from the dataset
    (``num_classes``, ``in_chans``, ``img_size``, ...) as far as the factory accepts it, under the
    entry's defaults, then the user's explicit options, which always pass (and fail loudly).

    :raises ConfigError: for an explicit option the factory does not take.
    """
    accepted_names = check_options(entry, explicit, "model")
    if accepted_names is None:  # takes **kwargs, or has no signature: pass everything
        return {**suggested, **explicit}
    accepted = {k: v for k, v in suggested.items() if k in accepted_names}
    return {**accepted, **explicit}


def check_options(entry: Entry, options: dict[str, Any], table: str) -> set[str] | None:
    """The keyword arguments ``entry``'s factory takes (``None`` when it takes any), after checking
    that it takes every key of ``options``.

    :param table: the config table the options come from (``model``, ``data``), for the remedy.
    :raises ConfigError: naming the unknown keys and the accepted ones; the factory's own
        ``TypeError`` would not say which ``--set`` was wrong.
    """
    try:
        params = inspect.signature(entry.load()).parameters.values()
    except (TypeError, ValueError):  # builtins and C callables: nothing to check against
        return None
    if any(p.kind is p.VAR_KEYWORD for p in params):
        return None
    names = {p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
    unknown = sorted(set(options) - names)
    if unknown:
        shown = ", ".join(sorted(names)) or "none"
        raise ConfigError(
            f"{singular_kind(entry)} {entry.name!r} has no option {', '.join(map(repr, unknown))}; it takes: "
            f"{shown} (--set {table}.NAME=VALUE; `bestiary info {entry.qualified_name}` describes them)"
        )
    return names


def singular_kind(entry: Entry) -> str:
    return {"architectures": "architecture", "datasets": "dataset"}.get(entry.kind, entry.kind)


def build_data(entry: Entry, options: dict[str, Any]) -> Data:
    check_options(entry, options, "data")
    data = entry.build(**options)
    if not isinstance(data, Data):
        raise TypeError(
            f"dataset {entry.qualified_name!r} returned {type(data).__name__}, not bestiary.engine.data.Data; "
            f"report it to {entry.provenance.distribution}"
        )
    return data


def build_metrics(entries: list[Entry]) -> dict[str, Metric]:
    return {e.name: e.build() for e in entries}


def autocast(precision: str, device: torch.device) -> contextlib.AbstractContextManager[Any]:
    """The autocast context of a precision on a device (``fp32``: none)."""
    if precision == "fp32":
        return contextlib.nullcontext()
    if precision == "fp16" and device.type != "cuda":
        raise ConfigError("precision fp16 needs a CUDA device (it uses a grad scaler); use --precision bf16 on the CPU")
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device_type=device.type, dtype=dtype)


@dataclass
class RunContext:
    """What lifecycle hooks see of a run.

    :ivar config: the resolved config.
    :ivar path: the run directory.
    :ivar strategy: rank, world size, device, ``is_main``.
    :ivar model: the (wrapped) model.
    :ivar task: the task adapter.
    :ivar hparams: flat hyperparameters, for HParams views.
    :ivar resumed_step: the checkpoint step a resumed run continues from (0 for a fresh run).
    :ivar stop_reason: why a hook asked the run to stop (see :meth:`request_stop`), or ``None``.
    :ivar host: the plugin host running the run (its ``pm.hook`` calls other hooks, its
        ``registry`` looks entries up).
    :ivar data: the run's data (splits and ``info``), as the task prepared it for the model.
    :ivar total_steps: the optimizer steps the run will take.
    :ivar state: the live training state (:class:`bestiary.engine.state.TrainState`): step,
        epoch, best value; read it, never change it.
    """

    config: RunConfig
    path: Path
    strategy: Strategy
    model: torch.nn.Module
    task: Task
    hparams: dict[str, Any] = field(default_factory=dict)
    resumed_step: int = 0
    stop_reason: str | None = field(default=None, kw_only=True)
    host: Any = field(default=None, kw_only=True)
    data: Data | None = field(default=None, kw_only=True)
    total_steps: int = field(default=0, kw_only=True)
    state: Any = field(default=None, kw_only=True)

    @property
    def is_main(self) -> bool:
        return self.strategy.is_main

    def request_stop(self, reason: str) -> None:
        """Ask the run to end early, from a lifecycle hook (a pruned trial, a debugger rule).

        The engine honours it at the next step or evaluation boundary: it saves a checkpoint and the
        model, and ends with status ``stopped`` and ``stop_reason`` in the summary. Under a
        multi-process strategy the run stops when any process asks. The first reason is kept.
        """
        if self.stop_reason is None:
            self.stop_reason = str(reason)
