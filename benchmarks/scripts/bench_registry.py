"""How fast is the registry? Start-up of `bestiary list --json`, and lookups once loaded.

Run it with the interpreter bestiary is installed in::

    python benchmarks/scripts/bench_registry.py [--repeats N] [--timm-repeats N] [--json FILE] [--check]

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
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import bestiary
from bestiary.benchmarks.method import cpu_count, load_average, version
from bestiary.benchmarks.registry_probe import (
    HEAVY_MODULES,
    imported_modules,
    measure_lookups,
    time_process,
)

LIST_TARGET_S = 0.3
LOOKUP_TARGET_US = 10.0
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
