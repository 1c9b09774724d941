"""Shared pieces of the checks: resolving entries and their conformance settings, failing with a
message that names the entry, and comparing nested tensors."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch  # the checks build and run entries; only they import this module

from ..api import get_entry
from ..registry import Entry, LookupFailure, singular
from .report import ConformanceError
from .select import matches

#: Small task facts per built-in task, so that every architecture is checked on a tiny batch.
DEFAULT_INFO: dict[str, dict[str, Any]] = {
    "image-classification": {"num_classes": 3, "in_chans": 3, "input_size": [3, 32, 32]},
    "forecasting": {"prediction_length": 4, "context_length": 12, "freq": "D"},
}

#: Keys allowed in an entry's ``metadata["conformance"]`` and in ``overrides`` values.
CONFIG_KEYS = {
    "build": "keyword arguments for the factory (dict), e.g. a small width for a heavy architecture",
    "info": "task facts to check with (dict), e.g. {'input_size': [3, 64, 64]}",
    "task": "the task to check a metric or architecture under, when the entry declares none",
    "batch_size": "samples per sample batch (int)",
    "skip": "a reason not to check this entry here (str), e.g. 'needs a CUDA device'",
}

Overrides = Mapping[str, Mapping[str, Any]]


@dataclass
class Config:
    """Conformance settings of one entry: its metadata, then ``overrides``, then explicit arguments."""

    build: dict[str, Any] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)
    task: str | None = None
    batch_size: int | None = None
    skip: str | None = None

    def merge(self, entry: Entry, source: str, values: Mapping[str, Any]) -> None:
        if not isinstance(values, Mapping):
            raise ConformanceError(
                entry, "conformance settings", f"{source} must be a mapping, got {values!r}"
            )
        unknown = sorted(set(values) - set(CONFIG_KEYS))
        if unknown:
            known = "; ".join(f"{k}: {v}" for k, v in CONFIG_KEYS.items())
            raise ConformanceError(
                entry,
                "conformance settings",
                f"{source} has unknown key(s) {unknown}",
                f"the keys are {known}",
            )
        for key in ("build", "info"):
            if key in values:
                if not isinstance(values[key], Mapping):
                    raise ConformanceError(
                        entry,
                        "conformance settings",
                        f"{source}[{key!r}] must be a mapping, got {values[key]!r}",
                    )
                getattr(self, key).update(values[key])
        for key in ("task", "batch_size", "skip"):
            if values.get(key) is not None:
                setattr(self, key, values[key])


def resolve(kind: str, entry: Entry | str) -> Entry:
    """The entry itself, or the entry of ``kind`` called ``entry`` (bare or qualified name)."""
    if isinstance(entry, Entry):
        if entry.kind != kind:
            raise TypeError(
                f"{entry.qualified_name!r} is a {singular(entry.kind)}, not a {singular(kind)}; "
                "use check_entry() to dispatch by kind"
            )
        return entry
    return get_entry(kind, entry)


def config(entry: Entry, overrides: Overrides | None = None, **explicit: Any) -> Config:
    """Merge ``metadata["conformance"]``, matching ``overrides`` and explicit settings."""
    cfg = Config()
    if "conformance" in entry.metadata:
        cfg.merge(entry, 'metadata["conformance"]', entry.metadata["conformance"])
    for key, values in (overrides or {}).items():
        if matches(entry, key):
            cfg.merge(entry, f"overrides[{key!r}]", values)
    cfg.merge(entry, "the keyword arguments", {k: v for k, v in explicit.items() if v})
    return cfg


def task_entry(entry: Entry, name: str | None) -> Entry:
    """The task entry an entry declares, with a clear failure when it declares none or an unknown one."""
    if not name:
        raise ConformanceError(
            entry,
            "task",
            "declares no task, so the kit cannot make a sample batch for it",
            "pass task='image-classification' (or another task) to register(), or set "
            "metadata={'conformance': {'task': ...}}",
        )
    try:
        return get_entry("tasks", name)
    except LookupFailure as exc:
        raise ConformanceError(
            entry,
            "task",
            f"its task {name!r} is not registered: {exc}",
            "install the plugin that registers the task, or fix the task name",
        ) from exc


def build_task(entry: Entry, name: str | None) -> Any:
    source = task_entry(entry, name)
    with step(entry, "task"):
        return source.build()


def task_info(task: str | None, cfg: Config) -> dict[str, Any]:
    """Task facts: the kit's defaults, the task entry's conformance info, then the entry's."""
    info = dict(DEFAULT_INFO.get(task or "", {}))
    with contextlib.suppress(LookupFailure):
        if task:
            conf = get_entry("tasks", task).metadata.get("conformance") or {}
            info.update(conf.get("info") or {})
    info.update(cfg.info)
    return info


@contextlib.contextmanager
def step(entry: Entry, check: str, hint: str | None = None) -> Iterator[None]:
    """Turn any exception inside into a :class:`ConformanceError` for ``check``."""
    try:
        yield
    except ConformanceError:
        raise
    except Exception as exc:
        raise ConformanceError(entry, check, f"{type(exc).__name__}: {exc}", hint) from exc


@contextlib.contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Seed torch for the block, leaving the caller's random state as it was."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


def shape(x: Any) -> list[int]:
    return list(x.shape)


def difference(a: Any, b: Any, path: str = "outputs") -> str | None:
    """Where two nested outputs (tensors, mappings, sequences, numbers) differ, or ``None``."""
    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        if not (isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor)):
            return f"{path}: {type(a).__name__} vs {type(b).__name__}"
        if a.shape != b.shape or a.dtype != b.dtype:
            return f"{path}: shape {shape(a)} {a.dtype} vs {shape(b)} {b.dtype}"
        if torch.equal(a, b):
            return None
        if a.is_floating_point():
            gap = (a.double() - b.double()).abs()
            return f"{path}: max abs difference {gap.nan_to_num(math.inf).max().item():.3g} over {a.numel()} values"
        return f"{path}: {int((a != b).sum())} of {a.numel()} values differ"
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        if set(a) != set(b):
            return f"{path}: keys {sorted(a)} vs {sorted(b)}"
        return next((d for k in a if (d := difference(a[k], b[k], f"{path}[{k!r}]"))), None)
    if isinstance(a, Sequence) and isinstance(b, Sequence) and not isinstance(a, str):
        if len(a) != len(b):
            return f"{path}: length {len(a)} vs {len(b)}"
        return next(
            (d for i, (x, y) in enumerate(zip(a, b)) if (d := difference(x, y, f"{path}[{i}]"))), None
        )
    return None if a == b else f"{path}: {a!r} vs {b!r}"


def non_finite(x: Any, path: str = "outputs") -> str | None:
    """The first floating tensor in ``x`` holding NaN or infinity."""
    if isinstance(x, torch.Tensor):
        return path if x.is_floating_point() and not bool(torch.isfinite(x).all()) else None
    if isinstance(x, Mapping):
        return next((p for k, v in x.items() if (p := non_finite(v, f"{path}[{k!r}]"))), None)
    if isinstance(x, (list, tuple)):
        return next((p for i, v in enumerate(x) if (p := non_finite(v, f"{path}[{i}]"))), None)
    return None


def on_grid(x: Any) -> Any:
    """Round floating tensors to multiples of 1/16, so that float32 sums of them are exact in any
    order: a metric then agrees with itself exactly unless its arithmetic is wrong."""
    if isinstance(x, torch.Tensor):
        return torch.round(x * 16) / 16 if x.is_floating_point() else x
    if isinstance(x, Mapping):
        return {k: on_grid(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return type(x)(on_grid(v) for v in x)
    return x


def concat(parts: list[Any]) -> Any:
    """Batches (tensors, mappings, tuples of them) joined along the first dimension."""
    first = parts[0]
    if isinstance(first, torch.Tensor):
        return torch.cat(parts)
    if isinstance(first, Mapping):
        return {k: concat([p[k] for p in parts]) for k in first}
    if isinstance(first, (list, tuple)):
        return type(first)(concat([p[i] for p in parts]) for i in range(len(first)))
    if all(p == first for p in parts):
        return first
    raise TypeError(f"cannot join batches holding {type(first).__name__} values that differ between batches")
