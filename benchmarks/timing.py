"""Timing helpers of the benchmarks: a clock that stamps every optimizer step, and the CPU time
other processes take meanwhile.

Both the engine's runs and the hand-written baseline loop (:mod:`bestiary.benchmarks.baseline`)
are timed by the same :class:`StepClock`, so their figures compare.
"""

from __future__ import annotations

import itertools
import os
import statistics
import time
from typing import Any

_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def cpu_snapshot() -> tuple[float, float] | None:
    """CPU seconds spent so far by the whole machine (steal included) and by this process.

    ``None`` where there is no ``/proc/stat`` (not Linux).
    """
    try:
        with open("/proc/stat", encoding="ascii") as f:
            fields = [int(x) for x in f.readline().split()[1:9]]
    except (OSError, ValueError):
        return None
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields
    times = os.times()
    return (user + nice + system + irq + softirq + steal) / _TICK, times.user + times.system


def others_between(before: tuple[float, float] | None, after: tuple[float, float] | None,
                   seconds: float) -> float | None:
    """CPU cores that other processes kept busy between two :func:`cpu_snapshot` s taken
    ``seconds`` apart (``None`` when either is missing)."""
    if before is None or after is None:
        return None
    return max(0.0, (after[0] - before[0]) - (after[1] - before[1])) / seconds


def others_busy(window: float = 0.5) -> float | None:
    """CPU cores that other processes kept busy over the next ``window`` seconds (``None`` where
    there is no ``/proc/stat``)."""
    before = cpu_snapshot()
    time.sleep(window)
    return others_between(before, cpu_snapshot(), window)


def fitting_threads(usable: int, busy: float, current: int) -> int:
    """Threads for a run on ``usable`` CPUs of which other processes keep ``busy`` cores busy: the
    current count when it fits, else the free cores (at least one). An oversubscribed machine makes
    every thread wait for the others: 2 threads on a 2-core machine shared with other work were
    measured 8x slower than 1."""
    free = max(1, int(usable - busy + 0.5))
    return min(current, free)


class StepClock:
    """Stamps the end of every optimizer step, through a global optimizer step post-hook.

    Every optimizer in the process is stamped, so both loops are timed by the same code. On CUDA the
    stamps that bound the timed window (steps ``warmup`` and ``warmup + steps``) wait for the
    device first; the others do not, so the loops run as they would untimed.
    """

    def __init__(self) -> None:
        from torch.optim.optimizer import register_optimizer_step_post_hook

        self.times: list[float] = []
        self.ends: tuple[int, ...] = ()
        self.cpu: list[tuple[float, float] | None] = []
        self.cuda: str | None = None
        self._handle = register_optimizer_step_post_hook(self._hook)

    def reset(self, warmup: int, steps: int, device: str) -> None:
        """Start a run's stamps; ``device`` is the run's (a CUDA one is synchronized at the ends)."""
        cuda = device if device.startswith("cuda") else None
        self.times, self.ends, self.cpu, self.cuda = [], (warmup, warmup + steps), [], cuda

    def _hook(self, optimizer: Any, args: Any, kwargs: Any) -> None:
        if len(self.times) + 1 in self.ends:
            if self.cuda:
                import torch

                torch.cuda.synchronize(self.cuda)
            self.times.append(time.perf_counter())
            self.cpu.append(cpu_snapshot())
        else:
            self.times.append(time.perf_counter())

    def close(self) -> None:
        self._handle.remove()

    def result(self, warmup: int, steps: int, batch_size: int) -> dict[str, Any]:
        """Throughput over steps ``warmup + 1 .. warmup + steps`` (``warmup`` >= 1)."""
        if len(self.times) < warmup + steps:
            raise RuntimeError(f"only {len(self.times)} optimizer steps ran; expected {warmup + steps}")
        window = self.times[warmup - 1 : warmup + steps]
        seconds = window[-1] - window[0]
        others = others_between(self.cpu[0], self.cpu[1], seconds) if len(self.cpu) == 2 else None
        return {
            "samples_per_s": steps * batch_size / seconds,
            "seconds": seconds,
            # single steps are timed on the CPU only (CUDA runs ahead of the host)
            "median_step_ms": statistics.median(b - a for a, b in itertools.pairwise(window)) * 1e3,
            # CPU cores busy with anything but this process (steal included), on average
            "others_cores": others,
        }
