"""Facts every benchmark prints beside its figures: versions, CPU, usable cores, load."""

from __future__ import annotations

import os
import platform
from importlib import metadata
from pathlib import Path


def version(dist: str) -> str:
    """An installed distribution's version, read from metadata (importing torch would cost seconds)."""
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "not installed"


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def usable_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on every platform
        return os.cpu_count() or 1


def cpu_count() -> str:
    total, usable = os.cpu_count(), usable_cpus()
    return str(total) if usable == total else f"{usable} usable of {total}"


def load_average() -> str:
    # Other work on the machine inflates every wall time: print it next to the figures.
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg()) + " (1, 5, 15 min, at start)"
    except (AttributeError, OSError):
        return "unknown"
