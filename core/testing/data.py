"""Conformance of datasets (batches of the declared shapes) and metrics (additive over batches)."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any, NoReturn

import torch  # the checks build and run entries; `import bestiary.testing` does not import this

from ..engine.data import Data, make_loader
from ..engine.tasks import Task
from ..registry import Entry
from ._support import Overrides, build_task, concat, config, on_grid, resolve, seeded, shape, step, task_info
from .report import ConformanceError, Report

#: Batch sizes a metric is fed one by one, then joined (unequal, so per-batch averaging shows).
METRIC_BATCHES = (2, 3, 5)
#: Relative tolerance between a metric over batches and over their concatenation.
METRIC_RTOL = 1e-9
_UPDATE_HINT = (
    "stats(outputs, batch) receives the outputs the task's loss returns (logits [B, num_classes]; a forecaster's "
    "dict with 'mean' [B, H]) and the batch as collated; it returns a float64 vector [size] (reduction 'sum') "
    "or rows [n, size] ('cat')"
)


def check_dataset(
    entry: Entry | str, /, *, overrides: Overrides | None = None, **build_kwargs: Any
) -> Report:
    """Build a dataset and check that each split batches into the shapes its ``info`` declares.

    The factory must return :class:`bestiary.engine.data.Data` with a non-empty ``train`` split.
    One batch of every split, from :func:`bestiary.engine.data.make_loader` with the data's
    ``collate``, is checked against the task: ``(images [B, *input_size], labels [B])`` with labels
    in ``[0, num_classes)`` for image classification; ``past_target [B, context_length]`` and
    ``future_target [B, prediction_length]`` for forecasting; ``task.batch_size`` for any task.
    """
    entry = resolve("datasets", entry)
    cfg = config(entry, overrides, build=build_kwargs)
    report = Report(entry)
    if cfg.skip:
        report.skipped = str(cfg.skip)
        return report
    with seeded(0):
        with step(entry, "build", "a dataset factory must work offline, from shipped or generated data"):
            data = entry.build(**cfg.build)
        if not isinstance(data, Data):
            raise ConformanceError(
                entry,
                "build",
                f"the factory returned {type(data).__name__}, not bestiary.engine.data.Data",
                "wrap the splits: return bestiary.engine.data.Data(train=..., validation=..., info={...})",
            )
        info = data.info
        if not isinstance(info, Mapping):
            raise ConformanceError(
                entry, "info", f"Data.info is {type(info).__name__}, not a mapping",
                "info is a dict of task facts, e.g. {'num_classes': 10, 'in_chans': 3, 'input_size': [3, 32, 32]}",
            )
        if data.train is None:
            raise ConformanceError(entry, "splits", "it has no train split", "pass Data(train=...)")
        report.passed.append("build")
        task = build_task(entry, cfg.task or entry.task) if (cfg.task or entry.task) else None
        for split in ("train", "validation", "test"):
            dataset = getattr(data, split)
            if dataset is None:
                continue
            with step(
                entry,
                f"{split} split",
                "a split is a map-style dataset (__len__ and __getitem__) or a torch IterableDataset "
                "with __len__ (its items per epoch)",
            ):
                length = len(dataset)
            if length == 0:
                raise ConformanceError(entry, f"{split} split", "it is empty")
            n = min(int(cfg.batch_size or 4), length)
            with step(
                entry,
                f"{split} batch",
                "the split's samples must batch with Data.collate "
                "(default: torch.utils.data.default_collate)",
            ):
                loader = make_loader(dataset, batch_size=n, shuffle=False, seed=0, collate=data.collate)
                batch = next(iter(loader))
            _check_batch(entry, cfg.task or entry.task, task, info, batch, n, split)
            report.passed.append(f"{split} batch")
    return report


def _check_batch(
    entry: Entry,
    task_name: str | None,
    task: Task | None,
    info: Mapping[str, Any],
    batch: Any,
    n: int,
    split: str,
) -> None:
    where = f"{split} batch"

    def fail(detail: str, hint: str | None = None) -> NoReturn:
        raise ConformanceError(entry, where, detail, hint)

    if task_name == "image-classification":
        if not isinstance(batch, (list, tuple)) or len(batch) < 2:
            fail(f"a batch is {type(batch).__name__}, not (images, labels)")
        images, labels = batch[0], batch[1]
        if not isinstance(images, torch.Tensor) or not images.is_floating_point():
            fail(f"images are {getattr(images, 'dtype', type(images).__name__)}, not a floating tensor")
        num_classes = info.get("num_classes")
        if not isinstance(num_classes, int) or num_classes < 1:
            fail(f"info declares num_classes={num_classes!r}; image classification needs a positive int")
        declared = info.get("input_size")
        if declared is not None and shape(images)[1:] != list(declared):
            fail(
                f"images have shape {shape(images)} but info declares input_size {list(declared)} "
                f"(expected {[n, *declared]})",
                "make info['input_size'] match what the samples are",
            )
        if "in_chans" in info and (images.dim() < 2 or images.shape[1] != info["in_chans"]):
            fail(f"images have shape {shape(images)} but info declares in_chans={info['in_chans']}")
        if not isinstance(labels, torch.Tensor) or labels.is_floating_point() or labels.shape != (n,):
            fail(
                f"labels are {getattr(labels, 'dtype', type(labels).__name__)} of shape "
                f"{shape(labels) if isinstance(labels, torch.Tensor) else '?'}, not integers of shape [{n}]"
            )
        if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= num_classes):
            fail(
                f"labels span [{int(labels.min())}, {int(labels.max())}], outside [0, {num_classes}) "
                f"(num_classes={num_classes})"
            )
        if "classes" in info and len(info["classes"]) != num_classes:
            fail(f"info lists {len(info['classes'])} class names for num_classes={num_classes}")
    elif task_name == "forecasting":
        if not isinstance(batch, Mapping) or not {"past_target", "future_target"} <= set(batch):
            keys = sorted(batch) if isinstance(batch, Mapping) else type(batch).__name__
            fail(f"a batch is {keys}, not a mapping with 'past_target' and 'future_target'")
        horizon = info.get("prediction_length")
        if not isinstance(horizon, int) or horizon < 1:
            fail(f"info declares prediction_length={horizon!r}; forecasting needs a positive int")
        expected = {"past_target": info.get("context_length"), "future_target": horizon}
        for key, length in expected.items():
            value = batch[key]
            if not isinstance(value, torch.Tensor) or value.dim() != 2 or value.shape[0] != n:
                fail(
                    f"{key} has shape {shape(value) if isinstance(value, torch.Tensor) else '?'}, not [{n}, T]"
                )
            if length is not None and value.shape[1] != length:
                name = "prediction_length" if key == "future_target" else "context_length"
                fail(
                    f"{key} has shape {shape(value)} but info declares {name}={length} (expected [{n}, {length}])"
                )
            mask = batch.get(key.replace("target", "observed"))
            if mask is not None and shape(mask) != shape(value):
                fail(f"{key.replace('target', 'observed')} has shape {shape(mask)}, {key} {shape(value)}")
    if task is not None:
        with step(entry, where):
            got = task.batch_size(batch)
        if got != n:
            fail(f"the task counts {got} samples in a batch of {n}")


def check_metric(
    entry: Entry | str,
    /,
    *,
    info: Mapping[str, Any] | None = None,
    overrides: Overrides | None = None,
    outputs: Callable[[Mapping[str, Any], Any], Any] | None = None,
    **build_kwargs: Any,
) -> Report:
    """Check that a metric over several batches equals the metric over their concatenation.

    Batches come from ``task.sample_batch``; model outputs are made up to match (logits
    ``[B, num_classes]`` for image classification, ``{"mean": [B, H]}`` for forecasting, else the
    task's ``sample_outputs(info, batch)`` method or ``outputs(info, batch)``). Values lie on a
    coarse grid so sums are exact: any difference beyond ``1e-9`` relative is the metric's.
    """
    entry = resolve("metrics", entry)
    cfg = config(entry, overrides, info=info, build=build_kwargs)
    report = Report(entry)
    if cfg.skip:
        report.skipped = str(cfg.skip)
        return report
    task_name = cfg.task or entry.task
    task = build_task(entry, task_name)
    info = task_info(task_name, cfg)
    make = outputs or getattr(task, "sample_outputs", None) or _SAMPLE_OUTPUTS.get(task_name or "")
    if make is None:
        report.skipped = (
            f"the kit cannot make model outputs for task {task_name!r}; give the task a "
            "sample_outputs(info, batch) method or pass outputs= to check_metric"
        )
        return report

    def build() -> Any:
        with step(entry, "build"):
            metric = entry.build(**cfg.build)
        missing = [m for m in ("reset", "update", "compute") if not callable(getattr(metric, m, None))]
        if missing:
            raise ConformanceError(
                entry,
                "build",
                f"the factory returned {type(metric).__name__}, which lacks {', '.join(missing)}",
                "subclass bestiary.engine.metrics.Metric",
            )
        return metric

    def value(metric: Any, check: str) -> Any:
        with step(entry, check):
            result = metric.compute()
        if not _is_value(result):
            raise ConformanceError(
                entry, check, f"compute() returned {type(result).__name__}, not a number or a list of numbers"
            )
        if isinstance(result, float) and math.isnan(result):
            raise ConformanceError(
                entry, check, f"compute() returned NaN after {sum(METRIC_BATCHES)} samples"
            )
        return result

    with seeded(0):
        batches = [on_grid(task.sample_batch(info, n)) for n in METRIC_BATCHES]
        with step(entry, "sample outputs"):
            outs = [on_grid(make(info, b)) for b in batches]
        metric = build()
        report.passed.append("build")
        with step(entry, "update", _UPDATE_HINT):
            for out, batch in zip(outs, batches):
                metric.update(out, batch)
        over_batches = value(metric, "compute")
        whole_out, whole_batch = concat(outs), concat(batches)
        one = build()
        with step(entry, "update", _UPDATE_HINT):
            one.update(whole_out, whole_batch)
        in_one_go = value(one, "compute")
        if not _close(over_batches, in_one_go):
            sizes = ", ".join(map(str, METRIC_BATCHES))
            raise ConformanceError(
                entry,
                "batches vs one go",
                f"accumulated over {len(METRIC_BATCHES)} batches (sizes {sizes}) it gives {over_batches!r}, "
                f"over the same samples in one batch {in_one_go!r}: it is not additive",
                "accumulate sums (Metric.stats returns additive totals such as [sum of errors, count]) and "
                "divide only in Metric.value; never average per-batch averages",
            )
        report.passed.append("batches vs one go")
        with step(entry, "reset"):
            metric.reset()
            metric.update(whole_out, whole_batch)
        after_reset = value(metric, "reset")
        if not _close(after_reset, in_one_go):
            raise ConformanceError(
                entry,
                "reset",
                f"after reset() and one update it gives {after_reset!r}, a fresh metric {in_one_go!r}",
                "reset() must clear every accumulated statistic",
            )
        report.passed.append("reset")
    _check_direction(entry, metric, in_one_go)
    report.passed.append("direction")
    return report


def _check_direction(entry: Entry, metric: Any, value: Any) -> None:
    """A metric with one number per evaluation declares its direction in the entry's metadata, and
    the metric object agrees: training reads the object, ``tune``, ``bench`` and ``runs compare``
    read the metadata."""
    declared = entry.metadata.get("higher_is_better")
    actual = getattr(metric, "higher_is_better", None)
    if declared is None and isinstance(value, (int, float)):
        raise ConformanceError(
            entry,
            "direction",
            "gives one number but its metadata declares no higher_is_better",
            "register(..., metadata={'higher_is_better': True}) (False for an error or a loss) so that tune, "
            "bench and runs compare rank it as training does",
        )
    if declared is not None and not isinstance(declared, bool):
        raise ConformanceError(
            entry, "direction", f"metadata['higher_is_better'] is {declared!r}, not True or False",
            "declare the direction as a JSON boolean",
        )
    if isinstance(declared, bool) and isinstance(actual, bool) and declared != actual:
        raise ConformanceError(
            entry,
            "direction",
            f"metadata says higher_is_better={declared}, the metric object {actual}",
            f"set the class attribute higher_is_better = {declared} (training reads the object, ranking the metadata)",
        )


def _is_value(x: Any) -> bool:
    """A metric's value: a number, or lists (or a mapping) of them, such as a confusion matrix."""
    if isinstance(x, (int, float)):
        return not isinstance(x, bool)
    if isinstance(x, (list, tuple)):
        return all(_is_value(v) for v in x)
    if isinstance(x, Mapping):
        return all(isinstance(k, str) and _is_value(v) for k, v in x.items())
    return False


def _close(a: Any, b: Any) -> bool:
    """Equal within :data:`METRIC_RTOL`, element by element (NaN matches NaN inside lists)."""
    if isinstance(a, (list, tuple)) or isinstance(b, (list, tuple)):
        return (
            isinstance(a, (list, tuple))
            and isinstance(b, (list, tuple))
            and len(a) == len(b)
            and all(_close(x, y) for x, y in zip(a, b))
        )
    if isinstance(a, Mapping) or isinstance(b, Mapping):
        return (
            isinstance(a, Mapping)
            and isinstance(b, Mapping)
            and a.keys() == b.keys()
            and all(_close(a[k], b[k]) for k in a)
        )
    if math.isnan(a) and math.isnan(b):
        return True
    return a == b or abs(a - b) <= METRIC_RTOL * max(abs(a), abs(b))


def _logits(info: Mapping[str, Any], batch: Any) -> torch.Tensor:
    return torch.randn(batch[0].shape[0], int(info.get("num_classes", 3)))


def _forecast(info: Mapping[str, Any], batch: Any) -> dict[str, torch.Tensor]:
    return {"mean": torch.randn_like(batch["future_target"].float())}


_SAMPLE_OUTPUTS: dict[str, Callable[[Mapping[str, Any], Any], Any]] = {
    "image-classification": _logits,
    "forecasting": _forecast,
}
