"""The conformance checks, one per kind, usable without pytest.

Each check returns a :class:`~bestiary.testing.report.Report` (``skipped`` set when the entry cannot
be checked in this process) or raises :class:`~bestiary.testing.report.ConformanceError`, naming the
entry, its plugin and distribution, the step that failed and, where known, the fix.
"""

from __future__ import annotations

from collections.abc import Callable

from ..registry import Entry, singular
from ._support import Overrides
from .adapters import check_strategy, check_task
from .benchmarks import check_benchmark
from .data import check_dataset, check_metric
from .launchers import check_launcher
from .models import check_architecture
from .report import Report
from .rules import check_rule

__all__ = [
    "CHECKS",
    "check_architecture",
    "check_benchmark",
    "check_dataset",
    "check_entry",
    "check_metric",
    "check_strategy",
    "check_task",
]

#: The check of each kind; kinds without one are reported as skipped by :func:`check_entry`.
CHECKS: dict[str, Callable[..., Report]] = {
    "rules": check_rule,
    "architectures": check_architecture,
    "datasets": check_dataset,
    "metrics": check_metric,
    "strategies": check_strategy,
    "tasks": check_task,
    "launchers": check_launcher,
    "benchmarks": check_benchmark,
}


def check_entry(entry: Entry, /, *, overrides: Overrides | None = None) -> Report:
    """Run the check of ``entry``'s kind (see :data:`CHECKS`)."""
    check = CHECKS.get(entry.kind)
    if check is None:
        return Report(
            entry, skipped=f"bestiary.testing has no conformance check for {singular(entry.kind)} entries"
        )
    return check(entry, overrides=overrides)
