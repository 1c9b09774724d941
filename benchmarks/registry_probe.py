"""The ``registry`` measurement: import, listing and lookup times (see ``bench_registry.py``).

Probes:

* ``import``: wall time of a fresh ``python -c "import bestiary"``, median of ``runs`` after one
  warm-up run;
* ``list``: the same for ``python -m bestiary list --json``;
* ``lookup``: microseconds per ``bestiary.get_entry(kind, name)`` and per table lookup by bare
  and qualified name, in this process's loaded registry (best of 7 timeit rounds);
* ``heavy_imports``: how many torch/timm/gluonts modules a fresh ``list --json`` imported (0).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from .suite import Cell


def measure(cell: Cell, workdir: Path, repeat: int) -> dict[str, Any]:
    """One repeat of a registry probe; ``{"metrics", "info"}``."""
    from . import bench_registry as br

    runs = int(cell.settings.get("runs", 5))
    py = sys.executable
    if cell.probe == "import":
        r = br.time_process([py, "-c", "import bestiary"], runs)
        return {"metrics": {"wall_s": r["median_s"]}, "info": {"command": r["command"], "runs": runs,
                                                               "primary": "wall_s", "mode": "min"}}
    if cell.probe == "list":
        r = br.time_process([py, "-m", "bestiary", "list", "--json"], runs)
        return {"metrics": {"wall_s": r["median_s"]}, "info": {"command": r["command"], "runs": runs,
                                                               "primary": "wall_s", "mode": "min"}}
    if cell.probe == "lookup":
        r = br.measure_lookups()
        keys = ("get_entry_bare_us", "table_get_bare_us", "table_get_qualified_us")
        return {"metrics": {k: float(r[k]) for k in keys},
                "info": {"subject": r["qualified_name"], "entries_loaded": r["entries_loaded"],
                         "primary": "get_entry_bare_us", "mode": "min"}}
    if cell.probe == "heavy_imports":
        names, _, listed = br.imported_modules(["-m", "bestiary", "list", "--json"])
        heavy = sorted({n for n in names if n.split(".")[0] in br.HEAVY_MODULES})
        return {"metrics": {"heavy_modules": float(len(heavy)), "modules": float(len(names))},
                "info": {"heavy": heavy, "entries_listed": listed, "primary": "heavy_modules", "mode": "min"}}
    raise ValueError(f"unknown registry probe {cell.probe!r}")
