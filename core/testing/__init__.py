"""Conformance kit: check that plugin entries honour the contracts of their kind.

Plain functions, usable in any script or test::

    from bestiary.testing import check_architecture, check_entry
    check_architecture("myzoo:resnet9")            # raises ConformanceError on a defect
    check_entry(bestiary.get_entry("datasets", "myzoo:shapes"))

- an architecture builds for a small batch of its task, runs forward and backward, takes an
  optimizer step, and round-trips through ``save_model`` / ``load_model`` with identical outputs;
- a dataset yields batches of the shapes its ``info`` declares, labels in range;
- a metric gives the same value accumulated over batches as in one go;
- a task's sample batches, default metrics and model arguments are consistent;
- a strategy sets up on the CPU and trains a tiny model one step;
- a debugger rule turns sample records into findings; a launcher dry-runs a small job; a benchmark
  suite expands into cells (these three through ``check_entry`` or ``CHECKS``).

A failure from a usual mistake (a forecaster's forward returning a tensor instead of a dict, a
dataset factory returning bare splits, a metric without a declared direction, ...) ends with a
one-line ``hint:`` naming the fix.

An entry checked with small settings declares them in ``metadata={"conformance": {"build": {...},
"info": {...}}}`` (also ``"task"``, ``"batch_size"``, and ``"skip": "reason"``); tests can pass the
same as ``overrides={"name-or-pattern": {...}}``.

With pytest (this package is a pytest plugin, entry point ``pytest11``)::

    # test_myzoo.py: one test per entry of the plugin
    from bestiary.testing import conformance_tests
    test_conformance = conformance_tests(plugin="myzoo")

or ``pytest --bestiary-conformance=myzoo:*``, or a test taking the ``bestiary_entry`` fixture,
optionally marked ``@pytest.mark.bestiary_conformance(kind=..., plugin=..., pattern=...)``.

Importing this package stays cheap: torch loads with the first check.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .report import ConformanceError, Report
from .select import conformance_tests, select_entries

if TYPE_CHECKING:
    from .checks import (
        CHECKS,
        check_architecture,
        check_benchmark,
        check_dataset,
        check_entry,
        check_metric,
        check_strategy,
        check_task,
    )

_CHECKS = (
    "CHECKS",
    "check_architecture",
    "check_benchmark",
    "check_dataset",
    "check_entry",
    "check_metric",
    "check_strategy",
    "check_task",
)

__all__ = [
    "CHECKS",
    "ConformanceError",
    "Report",
    "check_architecture",
    "check_benchmark",
    "check_dataset",
    "check_entry",
    "check_metric",
    "check_strategy",
    "check_task",
    "conformance_tests",
    "select_entries",
]


def __getattr__(name: str) -> Any:
    # The checks import torch: load them on first use, not with the pytest plugin.
    if name in _CHECKS:
        from . import checks

        return getattr(checks, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
