"""How fast is the registry? Start-up of `bestiary list --json`, and lookups once loaded.

Run it with the interpreter bestiary is installed in::

    python benchmarks/bench_registry.py [--repeats N] [--timm-repeats N] [--json FILE] [--check]
    python -m bestiary.benchmarks.bench_registry

It measures

(a) the wall time of a fresh process running ``python -m bestiary list --json`` (and the
    ``bestiary`` console script next to the interpreter, when there is one), after one warm-up
    run, with ``python -c pass`` as the interpreter's own floor;
(b) the wall time of a fresh process running ``import timm; timm.list_models()``, the listing
    bestiary is compared with, without a warm-up run (skipped when timm is not installed);
(c) the time of one lookup by bare and by qualified name in a loaded registry, through
    ``bestiary.get_host().registry.table(kind).get(name)`` and through ``bestiary.get_entry``;
    the name comes from a built-in plugin when one registers architectures, otherwise from a
    plugin of about 1000 entries that this script adds at run time;
(d) which modules the fresh ``list --json`` process imported (``python -X importtime``): torch,
    timm and gluonts must not be among them.

With ``--check`` the exit status is 1 when a target is missed or a heavy module was imported.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
import timeit
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import bestiary
from bestiary.benchmarks.method import cpu_count, load_average, version
from bestiary import hookimpl

LIST_TARGET_S = 0.3
LOOKUP_TARGET_US = 10.0
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
                "bestiary.benchmarks.bench_registry:_never_built",
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
    ns = {
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


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="bench_registry", description="Start-up and lookup times of the bestiary registry."
    )
    parser.add_argument("--repeats", type=int, default=15, help="timed runs of `list --json` (default 15)")
    parser.add_argument(
        "--timm-repeats", type=int, default=5, help="timed runs of the timm listing (default 5)"
    )
    parser.add_argument("--json", type=Path, metavar="FILE", help="also write the results to FILE as JSON")
    parser.add_argument("--check", action="store_true", help="exit 1 when a target is missed")
    args = parser.parse_args(argv)
    if args.repeats < 1 or args.timm_repeats < 0:
        parser.error("--repeats must be at least 1 and --timm-repeats at least 0")

    py = sys.executable
    results: dict[str, Any] = {
        "method": {
            "python": f"{platform.python_version()} ({py})",
            "bestiary": bestiary.__version__,
            "torch": version("torch"),
            "timm": version("timm"),
            "cpus": cpu_count(),
            "platform": platform.platform(),
            "load_average": load_average(),
            "repeats": args.repeats,
            "timm_repeats": args.timm_repeats,
            "bestiary_env": {k: v for k, v in os.environ.items() if k.startswith("BESTIARY_")},
        }
    }
    print("bestiary registry benchmark")
    for key, value in results["method"].items():
        print(f"  {key:<13} {value}")

    print(f"\n(a) fresh process, one warm-up then {args.repeats} timed runs")
    startup = {"python -c pass": time_process([py, "-c", "pass"], args.repeats)}
    startup["python -m bestiary list --json"] = time_process(
        [py, "-m", "bestiary", "list", "--json"], args.repeats
    )
    script = shutil.which("bestiary", path=str(Path(py).parent))
    if script:
        startup["bestiary list --json"] = time_process([script, "list", "--json"], args.repeats)
    for label, r in startup.items():
        print(f"  {label:<32} median {r['median_s']:.3f} s   min {r['min_s']:.3f}   max {r['max_s']:.3f}")
    results["startup"] = startup
    list_median = startup["python -m bestiary list --json"]["median_s"]

    print(
        f"\n(b) fresh process: import timm; timm.list_models()  ({args.timm_repeats} timed runs, no warm-up)"
    )
    ratio = None
    if args.timm_repeats and version("timm") != "not installed":
        # No warm-up: at seconds a run, a cold page cache is the smaller error, and time is short.
        timm = time_process([py, "-c", "import timm; timm.list_models()"], args.timm_repeats, warmup=0)
        ratio = timm["median_s"] / list_median
        print(f"  median {timm['median_s']:.3f} s   min {timm['min_s']:.3f}   max {timm['max_s']:.3f}")
        print(f"  ratio timm / bestiary list --json: {ratio:.1f}x")
        results["timm"] = {**timm, "ratio_to_bestiary": ratio}
    else:
        print("  skipped (timm not installed or --timm-repeats 0)")

    print("\n(c) lookups in the loaded registry (best of 7 timeit rounds, per call)")
    lookups = measure_lookups()
    print(f"  subject: {lookups['bare_name']!r} / {lookups['qualified_name']!r} from {lookups['source']}")
    print(
        f"  entries loaded in this process: {lookups['entries_loaded']}; plugins: {len(lookups['plugins'])}"
    )
    for plugin in lookups["plugins"]:
        print(f"    {plugin}")
    rows = [
        ("get_host().registry.table(k).get(bare)", "host_chain_bare_us"),
        ("get_host().registry.table(k).get(qualified)", "host_chain_qualified_us"),
        ("bestiary.get_entry(k, bare)", "get_entry_bare_us"),
        ("table.get(bare)", "table_get_bare_us"),
        ("table.get(qualified)", "table_get_qualified_us"),
    ]
    for label, key in rows:
        print(f"  {label:<45} {lookups[key]:7.3f} us")
    results["lookups"] = lookups

    print("\n(d) modules imported by a fresh `python -m bestiary list --json`")
    names, slowest, listed = imported_modules(["-m", "bestiary", "list", "--json"])
    heavy = sorted({n for n in names if n.split(".")[0] in HEAVY_MODULES})
    print(f"  {len(names)} modules; entries listed: {listed}")
    print("  slowest top-level imports: " + ", ".join(f"{n} {us / 1000:.1f} ms" for us, n in slowest))
    print(f"  torch/timm/gluonts imported: {', '.join(heavy) if heavy else 'none'}")
    results["imports"] = {"modules": len(names), "heavy": heavy, "entries_listed": listed, "slowest": slowest}

    worst_lookup = max(
        lookups["host_chain_bare_us"], lookups["host_chain_qualified_us"], lookups["get_entry_bare_us"]
    )
    checks = {
        f"list --json median < {LIST_TARGET_S} s": list_median < LIST_TARGET_S,
        f"lookup < {LOOKUP_TARGET_US:g} us": worst_lookup < LOOKUP_TARGET_US,
        "no torch/timm/gluonts in `list --json`": not heavy,
    }
    print("\ntargets")
    for label, ok in checks.items():
        print(f"  {'ok  ' if ok else 'MISS'} {label}")
    results["checks"] = checks
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
        print(f"\nwrote {args.json}")
    return 1 if args.check and not all(checks.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
