"""The conformance check of benchmark suites: the entry builds a valid suite that expands."""

from __future__ import annotations

from typing import Any

from ..registry import Entry
from ._support import Overrides, config, resolve, step
from .report import ConformanceError, Report


def check_benchmark(entry: Entry | str, /, *, overrides: Overrides | None = None, **build_kwargs: Any) -> Report:
    """Check that a benchmark entry builds a :class:`bestiary.benchmarks.suite.Suite` whose matrix
    expands into cells. Names the suite asks for need not be installed: those cells become error
    rows when the suite runs, by design. Imports no torch and runs nothing.
    """
    from ..benchmarks.suite import Suite

    entry = resolve("benchmarks", entry)
    cfg = config(entry, overrides, build=build_kwargs)
    report = Report(entry)
    if cfg.skip:
        report.skipped = str(cfg.skip)
        return report
    with step(entry, "build", "return bestiary.benchmarks.suite.load_suite(package, resource)"):
        suite = entry.build(**cfg.build)
    if not isinstance(suite, Suite):
        raise ConformanceError(entry, "build", f"the factory returned {type(suite).__name__}, not a Suite",
                               "use the factory bestiary.benchmarks.suite:load_suite with package and resource")
    report.passed.append("build")
    declared = entry.metadata.get("measure")
    if declared is not None and declared != suite.measure:
        raise ConformanceError(entry, "measure", f"metadata says {declared!r} but the suite measures {suite.measure!r}",
                               "make metadata['measure'] match the suite file")
    report.passed.append("measure")
    with step(entry, "cells"):
        cells = suite.cells()
    if not cells:
        raise ConformanceError(entry, "cells", "the matrix expands to no cell")
    report.passed.append("cells")
    return report
