"""Profiler rules: where the time goes (data loading, outlier steps) and how the device is used."""

from __future__ import annotations

import statistics
from collections import deque
from collections.abc import Mapping
from itertools import pairwise
from typing import Any

from bestiary.extend import Finding, Rule, fmt


class _Patience(Rule):
    def __init__(self, *, action: str = "report") -> None:
        super().__init__(action=action)
        self.streak = 0
        self.since: int | None = None

    def _held(self, step: int, condition: bool, patience: int) -> bool:
        if condition:
            self.streak += 1
            self.since = step if self.since is None else self.since
        else:
            self.streak, self.since = 0, None
        return self.streak >= patience


class DataloaderBottleneck(_Patience):
    """Waiting for the data loader takes more than ``threshold`` of the step time, over the steps
    between collections, for ``patience`` collections in a row.

    :param threshold: fraction of step time (0-1) spent waiting for batches.
    :param patience: collections in a row before a finding.
    :param min_steps: steps a collection window needs to be judged.
    """

    needs = ("timing",)

    def __init__(self, *, threshold: float = 0.3, patience: int = 2, min_steps: int = 3, action: str = "report") -> None:
        super().__init__(action=action)
        self.threshold, self.patience, self.min_steps = threshold, patience, min_steps

    def observe(self, record: Mapping[str, Any]) -> list[Finding]:
        steps = (record.get("timing") or {}).get("steps") or []
        if len(steps) < self.min_steps:
            return []
        data = sum(s[1] for s in steps)
        total = data + sum(s[2] for s in steps)
        share = data / total if total > 0 else 0.0
        if not self._held(record["step"], share > self.threshold, self.patience):
            return []
        return self.finding(
            "data", record["step"],
            f"{share:.0%} of the step time went to waiting for the next batch over steps {steps[0][0]}-{steps[-1][0]} "
            f"({fmt(data / len(steps))} s of {fmt(total / len(steps))} s per step), for {self.patience} collections in a row",
            "the model waits for data: use data-loader workers (--num-workers 4), cache decoded or resized inputs, "
            "make per-sample transforms cheaper or move augmentation to the GPU, and read from faster storage",
            {"data_share": share, "data_s_per_step": data / len(steps), "step_s": total / len(steps),
             "threshold": self.threshold})


class StepTimeOutlier(Rule):
    """A step takes more than ``factor`` times the median step time of the last ``window`` steps
    (collection steps, slower on purpose, are left out; so are the first ``warmup`` steps).

    :param factor: how many times the median a step must take to count as an outlier.
    :param window: steps the median is taken over.
    :param warmup: first steps not judged (allocation, caches, compilation).
    """

    needs = ("timing",)

    def __init__(self, *, factor: float = 5.0, window: int = 200, warmup: int = 5, action: str = "report") -> None:
        super().__init__(action=action)
        self.factor, self.window, self.warmup = factor, window, warmup
        self.history: deque[float] = deque(maxlen=window)
        self.outliers: list[tuple[int, float]] = []

    def observe(self, record: Mapping[str, Any]) -> list[Finding]:
        found: list[tuple[int, float, float]] = []
        for step, data, compute in (record.get("timing") or {}).get("steps") or []:
            total = data + compute
            if step <= self.warmup:
                continue
            if len(self.history) >= 10:
                median = statistics.median(self.history)
                if median > 0 and total > self.factor * median:
                    found.append((int(step), total, median))
                    continue  # an outlier does not move the baseline
            self.history.append(total)
        if not found:
            return []
        self.outliers += [(s, t) for s, t, _ in found]
        step, total, median = max(found, key=lambda f: f[1] / f[2])
        return self.finding(
            "outliers", record["step"],
            f"step {step} took {fmt(total)} s, {fmt(total / median)} times the median step time of {fmt(median)} s "
            f"({len(found)} such step(s) in steps up to {record['step']})",
            "something stalls now and then: look for other processes competing for the machine, garbage collection, "
            "checkpoints or logging inside the loop, slow or remote storage, or a few very large samples",
            {"outliers": {str(s): t for s, t, _ in found}, "median_s": median, "factor": self.factor})


class _Gpu(_Patience):
    device = "cuda"
    needs = ("system",)


class LowGpuUtilization(_Gpu):
    """GPU utilisation stays below ``threshold`` percent for ``patience`` collections in a row
    (GPU runs only; needs NVML, through the ``pynvml`` package).

    :param threshold: utilisation in percent under which the GPU counts as idle.
    :param patience: collections in a row before a finding.
    """

    def __init__(self, *, threshold: float = 30.0, patience: int = 3, action: str = "report") -> None:
        super().__init__(action=action)
        self.threshold, self.patience = threshold, patience

    def observe(self, record: Mapping[str, Any]) -> list[Finding]:
        util = (record.get("system") or {}).get("gpu_util")
        if util is None or not self._held(record["step"], util < self.threshold, self.patience):
            return []
        return self.finding(
            "util", record["step"],
            f"the GPU was busy only {util:.0f}% of the time (under {self.threshold:.0f}% for {self.patience} "
            f"collections in a row, since step {self.since})",
            "the GPU waits for work: raise the batch size, use data-loader workers (--num-workers 4) and pinned "
            "memory, avoid host syncs such as .item() in the loop, and try --compile or channels-last",
            {"gpu_util": util, "threshold": self.threshold})


class CpuBottleneck(_Gpu):
    """The CPUs are busier than ``cpu_threshold`` percent while the GPU is busy less than
    ``gpu_threshold`` percent, for ``patience`` collections in a row (GPU runs only).

    :param cpu_threshold: CPU utilisation (all cores, percent) above which the CPU counts as saturated.
    :param gpu_threshold: GPU utilisation (percent) under which the GPU counts as starved.
    :param patience: collections in a row before a finding.
    """

    def __init__(self, *, cpu_threshold: float = 90.0, gpu_threshold: float = 50.0, patience: int = 3,
                 action: str = "report") -> None:
        super().__init__(action=action)
        self.cpu_threshold, self.gpu_threshold, self.patience = cpu_threshold, gpu_threshold, patience

    def observe(self, record: Mapping[str, Any]) -> list[Finding]:
        system = record.get("system") or {}
        cpu, gpu = system.get("cpu_percent"), system.get("gpu_util")
        if cpu is None or gpu is None:
            return []
        if not self._held(record["step"], cpu > self.cpu_threshold and gpu < self.gpu_threshold, self.patience):
            return []
        return self.finding(
            "cpu", record["step"],
            f"the CPUs were {cpu:.0f}% busy while the GPU was busy only {gpu:.0f}% of the time, for {self.patience} "
            f"collections in a row since step {self.since}",
            "the CPU cannot feed the GPU: move augmentation and decoding to the GPU, pre-process the data once and "
            "cache it, use more data-loader workers if cores are free, and avoid Python work per sample",
            {"cpu_percent": cpu, "gpu_util": gpu, "cpu_threshold": self.cpu_threshold,
             "gpu_threshold": self.gpu_threshold})


class GpuMemoryGrowth(_Gpu):
    """Allocated GPU memory rises at every one of ``patience`` collections in a row and by more than
    ``growth`` (relative) and ``min_mb`` over them, after the first ``warmup`` collections (GPU runs only).

    :param growth: relative rise over the streak that counts as growth (0.2: 20 %).
    :param min_mb: smallest rise in MiB that counts.
    :param patience: collections in a row with rising memory.
    :param warmup: first collections not judged (optimizer state and caches are allocated then).
    """

    def __init__(self, *, growth: float = 0.2, min_mb: float = 64.0, patience: int = 5, warmup: int = 2,
                 action: str = "report") -> None:
        super().__init__(action=action)
        self.growth, self.min_mb, self.patience, self.warmup = growth, min_mb, patience, warmup
        self.seen: list[tuple[int, float]] = []

    def observe(self, record: Mapping[str, Any]) -> list[Finding]:
        mem = (record.get("system") or {}).get("gpu_mem_alloc_mb")
        if mem is None:
            return []
        self.seen.append((record["step"], float(mem)))
        run = self.seen[self.warmup:]
        if len(run) < self.patience + 1:
            return []
        tail = run[-(self.patience + 1):]
        rising = all(b[1] > a[1] for a, b in pairwise(tail))
        rise = tail[-1][1] - tail[0][1]
        if not rising or rise < self.min_mb or rise < self.growth * tail[0][1]:
            return []
        return self.finding(
            "growth", record["step"],
            f"allocated GPU memory grew at each of the last {self.patience} collections, from {fmt(tail[0][1])} MiB at "
            f"step {tail[0][0]} to {fmt(tail[-1][1])} MiB at step {tail[-1][0]}",
            "something keeps tensors alive from step to step: log losses with loss.item() or loss.detach(), do not "
            "keep outputs or graphs in lists, and clear caches you add to; the run will run out of memory",
            {"memory_mb": {str(s): m for s, m in tail}, "growth": self.growth})


class BatchSizeTooSmall(_Gpu):
    """The run's peak GPU memory stays under ``memory_fraction`` of the GPU's memory while its
    utilisation stays under ``utilization`` percent, for ``patience`` collections in a row (GPU runs only).

    :param memory_fraction: fraction of the GPU's memory (0-1) under which it counts as mostly unused.
    :param utilization: GPU utilisation (percent) under which the GPU counts as underused.
    :param patience: collections in a row before a finding.
    """

    def __init__(self, *, memory_fraction: float = 0.3, utilization: float = 60.0, patience: int = 3,
                 action: str = "report") -> None:
        super().__init__(action=action)
        self.memory_fraction, self.utilization, self.patience = memory_fraction, utilization, patience

    def start(self, info: Mapping[str, Any]) -> list[Finding]:
        self.batch_size = info.get("batch_size")
        return []

    def observe(self, record: Mapping[str, Any]) -> list[Finding]:
        system = record.get("system") or {}
        peak, total, util = system.get("gpu_mem_peak_mb"), system.get("gpu_mem_total_mb"), system.get("gpu_util")
        if peak is None or not total or util is None:
            return []
        share = peak / total
        if not self._held(record["step"], share < self.memory_fraction and util < self.utilization, self.patience):
            return []
        batch = getattr(self, "batch_size", None)
        return self.finding(
            "batch", record["step"],
            f"the batch size{f' of {batch}' if batch else ''} uses {share:.0%} of the GPU's {fmt(total / 1024)} GiB at "
            f"its peak while the GPU is busy {util:.0f}% of the time",
            "raise the batch size (scale the learning rate with it, or use warm-up) until memory is well used; "
            "throughput per sample usually rises with it",
            {"peak_memory_share": share, "gpu_util": util, "batch_size": batch})
