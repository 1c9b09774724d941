"""Finding runs and putting them side by side: what ``bestiary runs show`` and ``runs compare`` print.

Everything is read from the run directories (``config.json``, ``summary.json``,
``metrics.jsonl``); the index only says where they are. Nothing here imports torch, and
matplotlib is imported only to draw a plot.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, TypeGuard

from ..errors import ConfigError
from ..registry.direction import metric_direction
from .index import RunsIndex
from .rundir import RunDir

#: Config fields that say where a run lives or how it prints, not how it trains.
NOT_PARAMETERS = frozenset({"runs_root", "run_dir", "quiet"})
#: Metric names (or parts of names) where lower is better, when no run or registry entry says.
LOWER_IS_BETTER = ("loss", "error", "mae", "mse", "rmse", "mape", "smape", "crps", "nll", "perplexity", "wql")


class RunNotFoundError(LookupError):
    """A run reference matches no run, or several: the message names the candidates or the remedy."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class UnknownMetricError(ValueError):
    """No compared run logged the requested metric; the message lists those they did log."""


@dataclass
class Run:
    """One run directory, read lazily."""

    path: Path
    config_file: dict[str, Any] = field(default_factory=dict)
    summary: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def read(cls, path: str | Path) -> Run:
        rd = RunDir(path)
        config = rd.read_json("config.json")
        summary = rd.read_json("summary.json") if (rd.path / "summary.json").exists() else {}
        return cls(Path(path).resolve(), config, summary)

    @property
    def id(self) -> str:
        return self.path.name

    @property
    def config(self) -> dict[str, Any]:
        """The run config (the ``config`` object of ``config.json``)."""
        return self.config_file.get("config") or {}

    @property
    def resolved(self) -> dict[str, Any]:
        """The parts the names resolved to: qualified arch, dataset, strategy, task, metrics."""
        return self.config_file.get("resolved") or {}

    @property
    def status(self) -> str:
        return self.summary.get("status") or self.config_file.get("status") or "running"

    @cached_property
    def metrics(self) -> list[dict[str, Any]]:
        """The records of ``metrics.jsonl``, in order."""
        return RunDir(self.path).metrics()

    def last_metrics(self) -> dict[str, dict[str, Any]]:
        """The last record of each split (``train``, ``validation``, ...)."""
        last: dict[str, dict[str, Any]] = {}
        for record in self.metrics:
            last[str(record.get("split", "train"))] = record
        return last

    def curve(self, metric: str, split: str) -> tuple[list[int], list[float]]:
        """Steps and values of ``metric`` in the records of ``split``."""
        steps, values = [], []
        for record in self.metrics:
            value = record.get(metric)
            if record.get("split", "train") == split and _is_number(value):
                steps.append(int(record.get("step", 0)))
                values.append(float(value))
        return steps, values

    def to_dict(self) -> dict[str, Any]:
        """Everything ``bestiary runs show --json`` prints."""
        return {
            "id": self.id,
            "path": str(self.path),
            "status": self.status,
            "config": self.config,
            "resolved": self.resolved,
            "environment": self.config_file.get("environment") or {},
            "summary": self.summary,
            "last_metrics": self.last_metrics(),
        }


def locate(ref: str, index: RunsIndex) -> Path:
    """The run directory ``ref`` names: a path to one, a run id, or a unique part of an id
    (its start, or any part such as the random suffix).

    :raises RunNotFoundError: when nothing or several runs match.
    """
    path = Path(ref).expanduser()
    if (path / "config.json").is_file():
        return path
    found = index.find(ref, limit=11)
    if len(found) == 1:
        return Path(found[0]["path"])
    if len(found) > 1:
        shown = ", ".join(r["id"] for r in found[:10]) + (", ..." if len(found) > 10 else "")
        raise RunNotFoundError(f"run {ref!r} is ambiguous: it matches {shown}; give more of the id")
    if (index.root / ref / "config.json").is_file():  # a run the index has not seen (yet)
        return index.root / ref
    raise RunNotFoundError(
        f"no run {ref!r} under {index.root}: give a run id, the start of one, or a run directory; "
        f"see `bestiary runs list --root {index.root}` (or `bestiary runs rebuild` if runs were copied in)"
    )


def load(refs: list[str], index: RunsIndex) -> list[Run]:
    """The runs ``refs`` name (see :func:`locate`), each once, in the order given."""
    runs: list[Run] = []
    seen = set()
    for ref in refs:
        path = locate(ref, index).resolve()
        if path not in seen:
            seen.add(path)
            runs.append(Run.read(path))
    return runs


# -- comparison -------------------------------------------------------------------------------


@dataclass
class Comparison:
    """Runs side by side: parameters that differ, and the best and final value of one metric.

    :param runs: the runs, in column order.
    :param metric: the compared metric.
    :param mode: ``max`` or ``min``: which value of :attr:`metric` is best.
    :param parameters: config field (``model.x`` for nested ones) -> one value per run; only
        fields whose values differ, after ``arch`` and ``dataset``, which are always there.
    :param best: per run, ``{"value", "step"}`` of the best :attr:`metric` (``None`` values when
        the run logged none).
    :param final: per run, the final metrics (its summary's, else its last evaluation's).
    """

    runs: list[Run]
    metric: str
    mode: str
    parameters: dict[str, list[Any]]
    best: list[dict[str, Any]]
    final: list[dict[str, Any]]

    def final_names(self) -> list[str]:
        """Names of final metrics, the compared metric first."""
        names = {k for f in self.final for k in f}
        return sorted(names, key=lambda n: (n != self.metric, n))

    def to_dict(self) -> dict[str, Any]:
        return {
            "metric": self.metric,
            "mode": self.mode,
            "differing": [k for k in self.parameters if k not in ("arch", "dataset")],
            "runs": [
                {
                    "id": run.id,
                    "path": str(run.path),
                    "status": run.status,
                    "steps": run.summary.get("steps"),
                    "wall_time_s": run.summary.get("wall_time_s"),
                    "parameters": {k: v[i] for k, v in self.parameters.items()},
                    "best": self.best[i],
                    "final": self.final[i],
                }
                for i, run in enumerate(self.runs)
            ],
        }


def compare(runs: list[Run], metric: str | None = None) -> Comparison:
    """Compare ``runs`` on ``metric`` (default: the metric the first run monitored).

    :raises UnknownMetricError: when no run logged ``metric``.
    """
    if not runs:
        raise ConfigError("give at least one run to compare")
    metric = metric or _monitor(runs[0]) or "loss"
    logged = {k for run in runs for r in run.metrics for k, v in r.items() if _is_number(v)}
    logged |= {k for run in runs for k in (run.summary.get("final") or {})}
    logged -= {"step", "epoch", "time"}
    if metric not in logged:
        raise UnknownMetricError(
            f"no run logged metric {metric!r}; the runs logged: {', '.join(sorted(logged)) or 'nothing yet'}"
        )
    mode = metric_mode(metric, runs)
    return Comparison(
        runs=runs,
        metric=metric,
        mode=mode,
        parameters=differing_parameters(runs),
        best=[_best(run, metric, mode) for run in runs],
        final=[_final(run) for run in runs],
    )


def differing_parameters(runs: list[Run]) -> dict[str, list[Any]]:
    """``arch`` and ``dataset`` (resolved names), then each config field whose values differ."""
    flat = [_flatten(run.config) for run in runs]
    out: dict[str, list[Any]] = {
        "arch": [run.resolved.get("arch") or run.config.get("arch") for run in runs],
        "dataset": [run.resolved.get("dataset") or run.config.get("dataset") for run in runs],
    }
    keys = sorted({k for f in flat for k in f} - NOT_PARAMETERS - {"arch", "dataset"})
    for key in keys:
        values = [f.get(key) for f in flat]
        if len({json.dumps(v, sort_keys=True, default=str) for v in values}) > 1:
            out[key] = values
    return out


def metric_mode(metric: str, runs: list[Run]) -> str:
    """``max`` or ``min`` for ``metric``: as a run monitored it, else as its metric entry declares
    (:func:`~bestiary.registry.direction.metric_direction`); a name no installed plugin registers
    (a run of a plugin since removed) is ``min`` when loss- or error-like, else ``max``."""
    for run in runs:
        best = run.summary.get("best") or {}
        if best.get("metric") == metric and best.get("mode") in ("max", "min"):
            return str(best["mode"])
        if run.resolved.get("monitor") == metric and run.resolved.get("mode") in ("max", "min"):
            return str(run.resolved["mode"])
    try:
        from ..host import get_host  # loads plugins: only for metrics no run monitored

        return metric_direction(metric, get_host()) or "max"
    except Exception:  # noqa: BLE001  (an unknown metric or a broken plugin must not stop a comparison)
        lowered = metric.lower()
        return "min" if any(part in lowered for part in LOWER_IS_BETTER) else "max"


def _monitor(run: Run) -> str | None:
    return (run.summary.get("best") or {}).get("metric") or run.resolved.get("monitor")


def _best(run: Run, metric: str, mode: str) -> dict[str, Any]:
    best = run.summary.get("best") or {}
    if best.get("metric") == metric and _is_number(best.get("value")):
        return {"value": float(best["value"]), "step": best.get("step")}
    steps, values = run.curve(metric, "validation")
    if not values:
        steps, values = run.curve(metric, "train")
    finite = [(v, s) for s, v in zip(steps, values) if not math.isnan(v)]
    if not finite:
        return {"value": None, "step": None}
    pick = max if mode == "max" else min
    # The earliest step among equal values, as the trainer keeps the first best.
    value, step = pick(finite, key=lambda vs: (vs[0], -vs[1]) if mode == "max" else (vs[0], vs[1]))
    return {"value": value, "step": step}


def _final(run: Run) -> dict[str, Any]:
    final = run.summary.get("final")
    if final:
        return dict(final)
    last = run.last_metrics().get("validation") or {}
    return {k: v for k, v in last.items() if _is_number(v) and k not in ("step", "epoch", "time")}


def _flatten(config: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in config.items():
        if isinstance(value, dict) and value:
            out.update(_flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def _is_number(value: Any) -> TypeGuard[float]:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


# -- plot -------------------------------------------------------------------------------------


def plot(comparison: Comparison, file: str | Path) -> Path:
    """Write a PNG of the compared metric against step, one line per run: its validation
    records (its training records when it has none), and training loss dashed when the metric
    is ``loss``. Returns the file written."""
    # matplotlib only for plots, and without pyplot: no global backend, no GUI, Agg directly.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    metric = comparison.metric
    fig = Figure(figsize=(8, 5), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    drawn = 0
    for run in comparison.runs:
        steps, values = run.curve(metric, "validation")
        split = "validation"
        if not values:
            steps, values = run.curve(metric, "train")
            split = "train"
        (line,) = ax.plot(
            steps, values, marker="o" if len(steps) < 30 else None, markersize=3, label=f"{run.id} ({split})"
        )
        drawn += bool(values)
        if metric == "loss" and split == "validation":
            train_steps, train_values = run.curve("loss", "train")
            if train_values:
                ax.plot(
                    train_steps,
                    train_values,
                    linestyle="--",
                    color=line.get_color(),
                    alpha=0.7,
                    label=f"{run.id} (train)",
                )
                drawn += 1
    ax.set_xlabel("step")
    ax.set_ylabel(metric)
    ax.set_title(f"{metric} ({'higher' if comparison.mode == 'max' else 'lower'} is better)")
    ax.grid(True, alpha=0.3)
    if drawn:
        ax.legend(fontsize="small")
    else:
        ax.text(0.5, 0.5, f"no {metric} records yet", ha="center", va="center", transform=ax.transAxes)
    out = Path(file)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, format="png", dpi=100)
    return out
