"""The ``quality`` measurement: train through the engine, evaluate, report the task's metrics.

One repeat is one :func:`bestiary.engine.trainer.train` run (seed ``config.seed + repeat``, so
repeats show the spread over seeds) followed by :func:`bestiary.engine.evaluate.evaluate_run` on
the suite's ``split`` (``test`` by default; the last validation metrics when the dataset has no
such split). Wall time is the training loop's; ``total_s`` adds building, evaluation and export.
With a ``target``, ``time_to_target_s`` is the time from the start of the run to the first
validation evaluation reaching it (one evaluation per epoch by default).
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import Any

from .suite import Cell

#: keys of an evaluation record that are not metrics
_NOT_METRICS = {"split", "dataset", "time", "report"}


def run_config(cell: Cell, run_dir: Path, repeat: int) -> Any:
    """The run config of one repeat of ``cell``."""
    from bestiary.engine.config import RunConfig

    values = dict(cell.config)
    values.update(arch=cell.arch, dataset=cell.dataset, strategy=cell.strategy, precision=cell.precision,
                  compile=cell.compile, channels_last=cell.channels_last, run_dir=str(run_dir),
                  runs_root=str(run_dir.parent), quiet=False, seed=int(values.get("seed", 0)) + repeat)
    if cell.batch_size is not None:
        values["batch_size"] = cell.batch_size
    if not cell.settings.get("keep_checkpoints"):
        values["keep_checkpoints"] = 1
    return RunConfig.from_dict(values)


def measure(cell: Cell, workdir: Path, repeat: int) -> dict[str, Any]:
    """Train and evaluate one repeat; return ``{"metrics": {...}, "info": {...}}``."""
    from bestiary.engine.evaluate import evaluate_run
    from bestiary.engine.trainer import train

    if cell.world_size != 1:
        raise ValueError("quality trains in this process; measure world sizes with a scaling suite")
    run_dir = workdir / f"{_slug(cell.id)}-r{repeat}"
    if run_dir.exists():  # left by an interrupted sweep: this repeat starts over
        shutil.rmtree(run_dir)
    cfg = run_config(cell, run_dir, repeat)
    started_wall, started = time.time(), time.perf_counter()
    summary = train(cfg)
    if summary["status"] == "interrupted":  # Ctrl-C or SIGTERM: end the sweep, not just this cell
        raise KeyboardInterrupt(f"run {summary['run_dir']} was interrupted")
    if summary["status"] not in ("completed", "stopped"):
        raise RuntimeError(f"the run ended {summary['status']}: {summary.get('error', '')}")
    split = cell.settings.get("split", "test")
    try:
        record = evaluate_run(summary["run_dir"], split=split)
    except ValueError as exc:
        if f"no {split} split" not in str(exc):
            raise
        record, split = dict(summary["final"]), "validation"
    metrics = {k: float(v) for k, v in record.items()
               if k not in _NOT_METRICS and isinstance(v, (int, float)) and not isinstance(v, bool)}
    metrics["wall_time_s"] = float(summary["wall_time_s"])
    metrics["total_s"] = time.perf_counter() - started
    if summary.get("train_samples_per_s"):
        metrics["train_samples_per_s"] = float(summary["train_samples_per_s"])
    best = summary.get("best") or {}
    primary, mode = best.get("metric", "loss"), best.get("mode", "min")
    info: dict[str, Any] = {"split": split, "run_dir": summary["run_dir"], "steps": summary["steps"],
                            "epochs": summary["epochs"], "primary": primary, "mode": mode}
    if cell.target:
        reached = time_to_target(Path(summary["run_dir"]), cell.target, started_wall, mode_of(cell.target["metric"], mode, primary))
        info["target"] = {**cell.target, "reached": reached is not None}
        if reached is not None:
            metrics["time_to_target_s"] = reached
        info["primary"], info["mode"] = cell.target["metric"], mode_of(cell.target["metric"], mode, primary)
    if not cell.settings.get("keep_checkpoints"):
        shutil.rmtree(Path(summary["run_dir"]) / "checkpoints", ignore_errors=True)
    return {"metrics": metrics, "info": info}


def mode_of(metric: str, monitor_mode: str, monitor: str) -> str:
    """``max`` or ``min`` for ``metric``: the monitor's mode for the monitor, else as its metric
    entry declares (the monitor's mode for a value that is no score)."""
    from .runner import direction

    judged = direction(metric, monitor_mode, monitor)
    return monitor_mode if judged is None else "max" if judged == "higher" else "min"


def time_to_target(run_dir: Path, target: dict[str, Any], started_wall: float, mode: str) -> float | None:
    """Seconds from ``started_wall`` to the first validation record meeting ``target``."""
    path = run_dir / "metrics.jsonl"
    if not path.exists():
        return None
    for line in path.read_text().splitlines():
        try:
            rec = json.loads(line)
        except ValueError:
            continue
        value = rec.get(target["metric"])
        if rec.get("split") != "validation" or not isinstance(value, (int, float)):
            continue
        if (value >= target["value"]) if mode == "max" else (value <= target["value"]):
            return max(0.0, float(rec["time"]) - started_wall)
    return None


def _slug(cell_id: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "-" for c in cell_id.replace("/", "-"))
