"""Running a suite: cells in turn, repeats aggregated, one row per cell appended to results.jsonl.

A cell that raises becomes an error row and the sweep goes on. A rerun with the same output
folder skips the cells that already have a successful row (error rows are retried); the latest
row of a cell is the one reports use. Every row carries the method it was measured with.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..registry.direction import metric_direction
from .method import cpu_name, usable_cpus, version
from .suite import Cell, Suite
from .timing import fitting_threads, others_busy

RESULTS = "results.jsonl"

#: measurement names (or suffixes) that no metric entry has, and their direction
LOWER = ("loss", "_s", "_ms", "_us", "_mb", "heavy_modules")
HIGHER = ("_per_s", "_ratio")
NEUTRAL = ("params_m", "gmacs", "modules")


def measure_fn(measure: str) -> Callable[[Cell, Path, int], dict[str, Any]]:
    """The function measuring one repeat of a cell of ``measure``."""
    if measure == "quality":
        from .quality import measure as fn
    elif measure == "throughput":
        from .throughput import measure as fn
    elif measure == "scaling":
        from .scaling import measure as fn
    else:
        from .registry_probe import measure as fn
    return fn


def direction(metric: str, mode: str | None = None, primary: str | None = None) -> str | None:
    """``higher``, ``lower`` or ``None`` (not a score: parameters, GMACs) for a metric name: as the
    cell's run monitored it, else as its metric entry declares, else by the measurement's name."""
    if metric == primary and mode in ("max", "min"):
        return "higher" if mode == "max" else "lower"
    if is_metric(metric):
        found = metric_direction(metric, _registry())
        return None if found is None else "higher" if found == "max" else "lower"
    if metric in NEUTRAL:
        return None
    if metric.endswith(HIGHER):
        return "higher"
    return "lower" if metric.endswith(LOWER) else None


def is_metric(metric: str) -> bool:
    """Whether ``metric`` is the loss or a metric entry (rather than a measurement of the bench)."""
    return metric == "loss" or metric in _registry().table("metrics")


def _registry() -> Any:
    from ..host import get_host  # loads plugins: only once a row is judged

    return get_host().registry


def read_rows(path: Path) -> list[dict[str, Any]]:
    """Every row of a results file (or of ``DIR/results.jsonl``); lines cut short are skipped."""
    path = Path(path)
    if path.is_dir():
        path = path / RESULTS
    if not path.exists():
        return []
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            rows.append(json.loads(line))
        except ValueError:
            continue
    return rows


def latest(rows: list[dict[str, Any]], suite: str | None = None) -> list[dict[str, Any]]:
    """The last row of each ``(suite, cell)``, in first-seen order."""
    out: dict[tuple[str, str], dict[str, Any]] = {}
    for row in rows:
        if suite is None or row.get("suite") == suite:
            key = (row.get("suite", ""), row.get("cell", ""))
            out.pop(key, None)
            out[key] = row
    return list(out.values())


def method(cell: Cell, repeats: int, info: dict[str, Any]) -> dict[str, Any]:
    """How a row was measured: device, versions, and the settings that change the figure."""
    import torch  # every measurement but the registry's has imported it already

    import bestiary

    from ..engine.strategy import resolve_device

    device = str(info.get("device") or cell.config.get("device") or cell.settings.get("device") or "auto")
    if device == "auto":
        device = resolve_device(device).type
    if device.startswith("cuda") and torch.cuda.is_available():
        name = torch.cuda.get_device_name(torch.device(device))
    else:
        name = f"{cpu_name()} ({usable_cpus()} usable of {os.cpu_count()} CPUs)"
    plugins = {}
    for p in bestiary.get_host().plugins:
        if p.status == "ok":
            plugins[p.name] = f"{p.distribution} {p.version}"
    s = cell.settings
    out = {
        "device": device, "device_name": name, "torch": torch.__version__, "cuda": torch.version.cuda,
        "bestiary": bestiary.__version__, "timm": version("timm"), "python": platform.python_version(),
        "plugins": plugins, "precision": cell.precision, "batch_size": info.get("batch_used", cell.batch_size),
        "warmup": s.get("warmup"), "iterations": s.get("iterations"), "repeats": repeats,
        "compile": cell.compile, "channels_last": cell.channels_last,
        "threads": cell.settings.get("threads") or torch.get_num_threads(),
        "load_average": round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None,
    }
    if cell.measure in ("quality", "scaling"):
        out["config"] = cell.config
    return out


def aggregate(samples: list[dict[str, float]]) -> dict[str, dict[str, Any]]:
    """Median, min and max of each metric over repeats (only metrics every repeat gave)."""
    names = [k for k in samples[0] if all(k in s for s in samples)]
    return {k: {"median": statistics.median(s[k] for s in samples), "min": min(s[k] for s in samples),
                "max": max(s[k] for s in samples), "values": [s[k] for s in samples]} for k in names}


def run_cell(cell: Cell, workdir: Path, repeats: int) -> dict[str, Any]:
    """Measure ``cell`` ``repeats`` times; an exception becomes an error row."""
    started = time.perf_counter()
    row: dict[str, Any] = {"suite": cell.suite, "cell": cell.id, "measure": cell.measure, **cell.labels}
    if cell.error is not None:
        return {**row, "status": "error", "error": cell.error, "time": time.time(), "elapsed_s": 0.0}
    samples, info = [], {}
    try:
        fn = measure_fn(cell.measure)
        for repeat in range(repeats):
            result = fn(cell, workdir, repeat)
            samples.append(result["metrics"])
            info = result["info"]
    except Exception as exc:  # noqa: BLE001  (a failing cell is a row, not the end of the sweep)
        last = traceback.extract_tb(exc.__traceback__)[-1] if exc.__traceback__ else None
        where = f" (at {Path(last.filename).name}:{last.lineno})" if last else ""
        row.update(status="error", error=f"{type(exc).__name__}: {exc}"[:2000] + where)
        if os.environ.get("BESTIARY_DEBUG"):
            traceback.print_exc()
    else:
        metrics = aggregate(samples)
        primary, mode = info.get("primary"), info.get("mode")
        row.update(status="ok", metrics=metrics, primary=primary,
                   better={k: direction(k, mode, primary) for k in metrics}, info=info)
    try:
        row["method"] = method(cell, repeats, info)
    except Exception as exc:  # noqa: BLE001  (the method must never hide the measurement)
        row["method"] = {"error": f"{type(exc).__name__}: {exc}"}
    row.update(time=time.time(), elapsed_s=round(time.perf_counter() - started, 2))
    return row


def fit_threads(cell: Cell, echo: Callable[[str], None]) -> None:
    """Before a quality cell trains in this process: fewer torch threads when other processes keep
    cores busy, unless the suite sets ``threads``. Throughput cells keep what their settings say:
    their figure is the measurement."""
    if cell.measure != "quality":
        return
    import torch  # the cell is about to train with it

    wanted = cell.settings.get("threads")
    if wanted:
        torch.set_num_threads(int(wanted))
        return
    busy = others_busy()
    if busy is None:
        return
    current, usable = torch.get_num_threads(), usable_cpus()
    threads = fitting_threads(usable, busy, current)
    if threads < current:
        torch.set_num_threads(threads)
        echo(f"  other processes keep {busy:.1f} of {usable} cores busy: training with {threads} "
             f"thread(s) instead of {current} (set threads in the suite's [settings] to choose)")


def select_cells(suite: Suite, pattern: str | None, host: Any = None) -> list[Cell]:
    """The suite's cells matching ``pattern`` (all without one); an error names the cell ids."""
    cells = suite.cells(host)
    if pattern is None:
        return cells
    chosen = [c for c in cells if c.matches(pattern)]
    if not chosen:
        ids = ", ".join(c.id for c in cells[:12]) + (" ..." if len(cells) > 12 else "")
        raise ConfigError(f"--filter {pattern!r} matches no cell of suite {suite.name!r}; its cells: {ids}")
    return chosen


def run_suite(suite: Suite, out: Path, *, pattern: str | None = None, repeats: int | None = None,
              rerun: bool = False, echo: Callable[[str], None] = print) -> list[dict[str, Any]]:
    """Run ``suite`` into ``out``; return the latest row of each of its cells.

    :param suite: the suite.
    :param out: output folder (``results.jsonl``, ``runs/``, reports).
    :param pattern: run only cells whose id, or one part of it, matches this fnmatch pattern.
    :param repeats: measurements per cell (default: the suite's).
    :param rerun: measure cells again even when they have a successful row.
    :param echo: where progress lines go.
    """
    repeats = repeats or suite.repeats
    if repeats < 1:
        raise ConfigError(f"--repeats must be at least 1, got {repeats}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    results = out / RESULTS
    cells = select_cells(suite, pattern)
    done = {r["cell"] for r in read_rows(results) if r.get("suite") == suite.name and r.get("status") == "ok"}
    workdir = out / "runs"
    for i, cell in enumerate(cells, 1):
        label = f"[{i}/{len(cells)}] {cell.id}"
        if cell.id in done and not rerun:
            echo(f"{label}: done before, skipped")
            continue
        echo(f"{label}: running")
        fit_threads(cell, echo)
        row = run_cell(cell, workdir, repeats)
        with open(results, "a", encoding="utf-8") as f:
            f.write(json.dumps(row, default=str) + "\n")
        echo(f"{label}: {_one_line(row)}")
    ids = {c.id for c in cells}
    return [r for r in latest(read_rows(results), suite.name) if r["cell"] in ids]


def _one_line(row: dict[str, Any]) -> str:
    if row["status"] != "ok":
        return f"error: {row['error'].splitlines()[0][:300]}"
    shown = [row.get("primary")] + [k for k in row["metrics"] if k != row.get("primary")]
    parts = [f"{k} {row['metrics'][k]['median']:.4g}" for k in shown if k in row["metrics"]][:4]
    return f"ok ({row['elapsed_s']:.0f} s): " + ", ".join(parts)
