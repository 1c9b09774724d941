"""One run assembly: from a config (or a saved run) to built data, model, task and metrics.

Training (:mod:`bestiary.engine.trainer`, and so tuning trials and benchmarks), ``bestiary
evaluate`` and ``bestiary predict`` all build their parts here, so a saved model meets its data cut
and measured as it was during training.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch  # builds models; only runs import this module

from ..errors import ConfigError, TaskMismatchError
from ..host import PluginHost, get_host
from ..registry import Entry
from ..registry.errors import UnknownEntryError
from .config import RunConfig
from .data import Data
from .metrics import Metric
from .metrics import monitor_mode as metric_mode
from .run import Parts, architecture_kwargs, build_data, build_metrics
from .tasks import Task
from .weights import load_weights


@dataclass
class Assembly:
    """The built parts of a run, before a strategy wraps them.

    :ivar task: the task adapter.
    :ivar data: the data, prepared for the model by the task.
    :ivar model: the model (unwrapped).
    :ivar metrics: metric name -> built metric.
    :ivar model_kwargs: the arguments the architecture factory received.
    :ivar monitor: the validation metric tracked for the best model and early stopping.
    :ivar mode: ``max`` or ``min`` for :attr:`monitor`.
    """

    task: Task
    data: Data
    model: torch.nn.Module
    metrics: dict[str, Metric]
    model_kwargs: dict[str, Any]
    monitor: str = "loss"
    mode: str = "min"


def assemble(cfg: RunConfig, parts: Parts, task: Task) -> Assembly:
    """Build the data, the model (with ``cfg.weights`` loaded) and the metrics of a new run.

    :raises ConfigError: the monitored metric is not among the run's metrics.
    """
    data = build_data(parts.dataset, cfg.data)
    model_kwargs = architecture_kwargs(parts.arch, task.model_kwargs(data.info), cfg.model)
    model = build_model(parts.arch, model_kwargs, cfg.model)
    data = task.prepare_data(data, model, batch_size=cfg.batch_size, seed=cfg.seed)
    if cfg.weights:
        load_weights(model, cfg.weights)
    metrics = build_metrics(parts.metrics)
    monitor, mode = monitor_mode(cfg, task, metrics, parts.metrics)
    return Assembly(task, data, model, metrics, model_kwargs, monitor, mode)


def build_model(entry: Entry, kwargs: dict[str, Any], explicit: dict[str, Any]) -> torch.nn.Module:
    """Build the architecture; a factory that takes ``**kwargs`` (timm's) and refuses one of the
    user's ``--set model.*`` options gets a :class:`ConfigError` naming it instead of a TypeError."""
    try:
        model: torch.nn.Module = entry.build(**kwargs)
    except TypeError as exc:
        named = [k for k in explicit if f"keyword argument {k!r}" in str(exc)]
        if not named:
            raise
        raise ConfigError(f"architecture {entry.name!r} has no option {named[0]!r} (--set model.{named[0]}=...): "
                          f"{exc}; `bestiary info {entry.qualified_name}` describes its options") from exc
    return model


def monitor_mode(cfg: RunConfig, task: Task, metrics: dict[str, Metric], entries: list[Entry]) -> tuple[str, str]:
    """The monitored metric and its direction: the config's, else the task's default monitor and the
    direction its metric entry declares."""
    monitor = cfg.monitor or task.monitor
    if monitor != "loss" and monitor not in metrics:
        raise ConfigError(f"monitor {monitor!r} is not among the run's metrics ({', '.join(['loss', *metrics])}); "
                          "choose one with --monitor NAME, or add it with --metric NAME")
    return monitor, cfg.mode if cfg.mode is not None else metric_mode(monitor, entries)


@dataclass
class SavedRun:
    """A finished run's model with what evaluating or predicting needs.

    :ivar path: the run (or model) directory.
    :ivar meta: the model's ``model.json``.
    :ivar config: the run's saved config (empty for a bare model directory).
    :ivar task: the task adapter.
    :ivar device: where :meth:`load_model` puts the model.
    """

    path: Path
    meta: dict[str, Any]
    config: dict[str, Any]
    task: Task
    device: str | torch.device = "cpu"
    host: PluginHost | None = None

    def load_model(self) -> torch.nn.Module:
        """The saved model, rebuilt through the registry with its weights, in eval mode."""
        from .artifact import load_model

        return load_model(self.path, device=self.device, host=self.host)


def load_saved(path: str | Path, *, device: str | torch.device = "cpu", host: PluginHost | None = None) -> SavedRun:
    """A saved run's metadata, config and task (the model loads with :meth:`SavedRun.load_model`)."""
    from .artifact import read_meta

    host = host or get_host()
    _, meta = read_meta(path)
    config = _saved_config(Path(path) / "config.json")
    task = lookup("tasks", meta["task"], host).build()
    return SavedRun(Path(path), meta, config, task, device, host)


def _saved_config(config_file: Path) -> dict[str, Any]:
    import json

    return json.loads(config_file.read_text())["config"] if config_file.exists() else {}


def assemble_saved(saved: SavedRun, *, dataset: str | None = None, host: PluginHost | None = None) -> tuple[Entry, Assembly]:
    """The data (of the run's dataset, or of ``dataset`` of the same task), prepared for the saved
    model as training prepared it, and the run's metrics with the task's report metrics."""
    host = host or get_host()
    meta, task = saved.meta, saved.task
    entry = lookup("datasets", dataset or meta["dataset"], host)
    if entry.task is not None and entry.task != meta["task"]:
        raise TaskMismatchError(f"dataset {entry.name!r} is for {entry.task}, but the model of {saved.path} is for {meta['task']}")
    data = build_data(entry, meta.get("data", {}) if dataset is None else {})
    model = saved.load_model()  # after the data, as before: a dataset may draw from the global RNG
    data = task.prepare_data(data, model, batch_size=saved.config.get("batch_size"), seed=saved.config.get("seed"))
    names = list(meta.get("metrics", []))
    table = host.registry.table("metrics")
    names += [m for m in task.report_metrics if m in table and table.get(m).qualified_name not in names]
    metrics = build_metrics([lookup("metrics", m, host) for m in names])
    return entry, Assembly(task, data, model, metrics, dict(meta.get("model_kwargs", {})))


def lookup(kind: str, name: str, host: PluginHost | None = None) -> Entry:
    """The entry ``name`` of ``kind``; an unknown name also names the plugins that failed to load
    and may have supplied it (a saved run whose plugin broke since), with the remedy."""
    host = host or get_host()
    try:
        return host.registry.table(kind).get(name)
    except UnknownEntryError as exc:
        note = failed_plugins_note(host, name)
        if note:
            exc.message = f"{exc.message} {note}"
        raise


def failed_plugins_note(host: PluginHost, name: str) -> str:
    """A sentence naming the failed plugins that may supply ``name`` (``plugin:name`` names its
    plugin), or ``""`` when every plugin loaded."""
    failed = [p for p in host.plugins if p.status == "failed"]
    namespace = name.partition(":")[0] if ":" in name else None
    owner = [p for p in failed if p.name == namespace]
    if owner:
        p = owner[0]
        return (f"It comes from {p.describe()}, which failed to load: {p.error}. "
                "Run `bestiary plugins` for the details, and fix or reinstall that plugin.")
    if not failed:
        return ""
    which = "; ".join(f"{p.describe()}: {p.error}" for p in failed)
    return (f"It may come from a plugin that failed to load ({which}). "
            "Run `bestiary plugins` for the details, and fix or reinstall that plugin.")
