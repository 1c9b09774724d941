"""The ``registry`` measurement: import, listing and lookup times, and the timing helpers the
``benchmarks/scripts/bench_registry.py`` script reports with.

Probes:

* ``import``: wall time of a fresh ``python -c "import bestiary"``, median of ``runs`` after one
  warm-up run;
* ``list``: the same for ``python -m bestiary list --json``;
* ``lookup``: microseconds per ``bestiary.get_entry(kind, name)`` and per table lookup by bare
  and qualified name, in this process's loaded registry (best of 7 timeit rounds);
* ``heavy_imports``: how many torch/timm/gluonts modules a fresh ``list --json`` imported (0).
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time
import timeit
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import bestiary
from bestiary import hookimpl

from .suite import Cell

HEAVY_MODULES = ("torch", "timm", "gluonts")
RUNTIME_PLUGIN = "bench_registry"
RUNTIME_ENTRIES = 1000
KIND = "architectures"


def time_process(argv: Sequence[str], repeats: int, warmup: int = 1) -> dict[str, Any]:
    """Wall time of a fresh process running ``argv``, after ``warmup`` untimed runs."""
    for _ in range(warmup):
        proc = subprocess.run(argv, check=False, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        if proc.returncode:
            raise SystemExit(
                f"`{' '.join(argv)}` exited with status {proc.returncode}; nothing to time:\n{proc.stderr[-2000:]}"
            )
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        times.append(time.perf_counter() - start)
    return {
        "command": " ".join(argv),
        "repeats": repeats,
        "median_s": statistics.median(times),
        "min_s": min(times),
        "max_s": max(times),
    }


def imported_modules(argv: Sequence[str]) -> tuple[set[str], list[tuple[int, str]], int]:
    """Modules a fresh ``python -X importtime`` run of ``argv`` imported.

    :return: every module name, the slowest top-level imports as ``(microseconds, name)``, and
        the number of entries the command printed (its stdout is a JSON array).
    """
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", *argv], check=True, capture_output=True, text=True
    )
    names: set[str] = set()
    top: list[tuple[int, str]] = []
    for line in proc.stderr.splitlines():
        if not line.startswith("import time:") or "|" not in line:
            continue
        _, cumulative, name = line[len("import time:") :].split("|")
        if not cumulative.strip().isdigit():  # the header line
            continue
        names.add(name.strip())
        if not name.startswith("  "):
            top.append((int(cumulative), name.strip()))
    return names, sorted(top, reverse=True)[:5], len(json.loads(proc.stdout))


def _never_built(**kwargs: Any) -> None:
    """Factory of the runtime plugin's entries; the benchmark only looks them up."""


class _RuntimePlugin:
    """A plugin registering RUNTIME_ENTRIES architectures, for a realistic table size."""

    @hookimpl
    def register_architectures(self, register: Any) -> None:
        for i in range(RUNTIME_ENTRIES):
            register(
                f"bench_net{i}_{(i * 7919) % 1000:03d}",
                "bestiary.benchmarks.registry_probe:_never_built",
                task="image-classification",
                description=f"benchmark entry {i}",
                tags=("bench",),
            )


def _resolves_to(table: Any, entry: Any) -> bool:
    """Whether the bare name of ``entry`` finds it (not ambiguous)."""
    try:
        return table.get(entry.name) is entry
    except LookupError:
        return False


def lookup_subject(host: bestiary.PluginHost) -> tuple[str, str, str]:
    """A bare name, its qualified name and where it comes from, for the lookup timing."""
    table = host.registry.table(KIND)
    builtin = {p.name for p in host.plugins if p.source == "builtin" and p.status == "ok"}
    unique = [e for e in table if e.provenance.plugin in builtin and _resolves_to(table, e)]
    if unique:
        entry = unique[len(unique) // 2]
        return entry.name, entry.qualified_name, f"built-in plugin {entry.provenance.plugin!r}"
    records = {p.name: p for p in host.plugins}
    if RUNTIME_PLUGIN not in records:
        host.add_plugin(_RuntimePlugin(), name=RUNTIME_PLUGIN)
    info = {p.name: p for p in host.plugins}[RUNTIME_PLUGIN]
    if info.status != "ok":
        raise RuntimeError(f"the benchmark's own plugin failed to load: {info.error}")
    mine = [e for e in table if e.provenance.plugin == RUNTIME_PLUGIN]
    entry = mine[len(mine) // 2]
    return entry.name, entry.qualified_name, f"runtime plugin {RUNTIME_PLUGIN!r} ({len(mine)} entries)"


def time_call(stmt: str, namespace: dict[str, Any], repeats: int = 7) -> float:
    """Best per-call time of ``stmt`` in microseconds over ``repeats`` timeit rounds."""
    timer = timeit.Timer(stmt, globals=namespace)
    number, _ = timer.autorange()
    number = max(number, 20_000)
    return min(timer.repeat(repeat=repeats, number=number)) / number * 1e6


def measure_lookups() -> dict[str, Any]:
    host = bestiary.get_host()
    bare, qualified, source = lookup_subject(host)
    ns: dict[str, Any] = {
        "bestiary": bestiary,
        "table": host.registry.table(KIND),
        "kind": KIND,
        "bare": bare,
        "qualified": qualified,
    }
    assert ns["table"].get(bare) is ns["table"].get(qualified)
    return {
        "bare_name": bare,
        "qualified_name": qualified,
        "source": source,
        "host_chain_bare_us": time_call("bestiary.get_host().registry.table(kind).get(bare)", ns),
        "host_chain_qualified_us": time_call("bestiary.get_host().registry.table(kind).get(qualified)", ns),
        "get_entry_bare_us": time_call("bestiary.get_entry(kind, bare)", ns),
        "table_get_bare_us": time_call("table.get(bare)", ns),
        "table_get_qualified_us": time_call("table.get(qualified)", ns),
        "entries_loaded": sum(len(t) for t in host.registry),
        "plugins": [f"{p.name} ({p.source}, {p.status})" for p in host.plugins],
    }


def measure(cell: Cell, workdir: Path, repeat: int) -> dict[str, Any]:
    """One repeat of a registry probe; ``{"metrics", "info"}``."""
    runs = int(cell.settings.get("runs", 5))
    py = sys.executable
    if cell.probe == "import":
        r = time_process([py, "-c", "import bestiary"], runs)
        return {"metrics": {"wall_s": r["median_s"]}, "info": {"command": r["command"], "runs": runs,
                                                               "primary": "wall_s", "mode": "min"}}
    if cell.probe == "list":
        r = time_process([py, "-m", "bestiary", "list", "--json"], runs)
        return {"metrics": {"wall_s": r["median_s"]}, "info": {"command": r["command"], "runs": runs,
                                                               "primary": "wall_s", "mode": "min"}}
    if cell.probe == "lookup":
        r = measure_lookups()
        keys = ("get_entry_bare_us", "table_get_bare_us", "table_get_qualified_us")
        return {"metrics": {k: float(r[k]) for k in keys},
                "info": {"subject": r["qualified_name"], "entries_loaded": r["entries_loaded"],
                         "primary": "get_entry_bare_us", "mode": "min"}}
    if cell.probe == "heavy_imports":
        names, _, listed = imported_modules(["-m", "bestiary", "list", "--json"])
        heavy = sorted({n for n in names if n.split(".")[0] in HEAVY_MODULES})
        return {"metrics": {"heavy_modules": float(len(heavy)), "modules": float(len(names))},
                "info": {"heavy": heavy, "entries_listed": listed, "primary": "heavy_modules", "mode": "min"}}
    raise ValueError(f"unknown registry probe {cell.probe!r}")
