"""A lifecycle plugin that prints each evaluation's metrics on one line, for log-based metric
definitions (SageMaker tuning objectives, CloudWatch): ``[bestiary] step=120 validation:loss=0.41
validation:accuracy=0.93``. The container entry point loads it through ``BESTIARY_PLUGINS``."""

from __future__ import annotations

import math
from typing import Any

from bestiary import hookimpl

PREFIX = "[bestiary]"
#: The regular expression capturing the value of ``SPLIT:NAME`` in those lines.
VALUE_RE = r"([-+]?[0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)"


def metric_regex(split: str, name: str) -> str:
    """The SageMaker metric-definition regex for ``split:name``."""
    return rf"{split}:{name}={VALUE_RE}"


def _line(step: int, split: str, metrics: dict[str, float]) -> str:
    parts = [f"{split}:{k}={v:.6g}" for k, v in metrics.items()
             if isinstance(v, (int, float)) and math.isfinite(v) and k != "time"]
    return f"{PREFIX} step={step} " + " ".join(parts)


@hookimpl
def on_evaluation_end(run: Any, step: int, split: str, metrics: dict[str, float]) -> None:
    if run.is_main:
        print(_line(step, split, metrics), flush=True)


@hookimpl
def on_step_end(run: Any, step: int, metrics: dict[str, float]) -> None:
    if run.is_main:
        print(_line(step, "train", {k: v for k, v in metrics.items() if k in ("loss", "lr")}), flush=True)
