"""CPU, GPU and memory figures, sampled at collection steps only."""

from __future__ import annotations

import os
from typing import Any

import torch  # GPU memory figures come from torch; only runs import this module

MB = 1024 * 1024


class SystemSampler:
    """Samples utilisation and memory; utilisation is averaged since the previous sample.

    :param device: the run's device; GPU figures are sampled when it is a CUDA device.
    """

    def __init__(self, device: torch.device) -> None:
        self.device = device
        try:
            import psutil  # optional: CPU figures are left out without it

            self._process: Any = psutil.Process(os.getpid())
            self._psutil: Any = psutil
            self._process.cpu_percent(None)  # the first call only starts the interval
            psutil.cpu_percent(None)
        except ImportError:
            self._process = self._psutil = None
        self._gpu_util_ok = True

    def sample(self) -> dict[str, Any]:
        """``cpu_percent`` (all cores, 0-100), ``process_cpu_percent`` (this process, 100 per busy
        core), ``cpu_count``, ``rss_mb``; on a GPU also ``gpu_util`` (0-100, needs NVML),
        ``gpu_mem_alloc_mb``, ``gpu_mem_reserved_mb``, ``gpu_mem_peak_mb`` and ``gpu_mem_total_mb``."""
        out: dict[str, Any] = {"device": self.device.type}
        if self._psutil is not None:
            out["cpu_percent"] = self._psutil.cpu_percent(None)
            out["process_cpu_percent"] = self._process.cpu_percent(None)
            out["cpu_count"] = self._psutil.cpu_count() or 1
            out["rss_mb"] = round(self._process.memory_info().rss / MB, 1)
        if self.device.type == "cuda":
            index = self.device.index if self.device.index is not None else torch.cuda.current_device()
            out["gpu_mem_alloc_mb"] = round(torch.cuda.memory_allocated(index) / MB, 1)
            out["gpu_mem_reserved_mb"] = round(torch.cuda.memory_reserved(index) / MB, 1)
            out["gpu_mem_peak_mb"] = round(torch.cuda.max_memory_allocated(index) / MB, 1)
            out["gpu_mem_total_mb"] = round(torch.cuda.get_device_properties(index).total_memory / MB, 1)
            if self._gpu_util_ok:
                try:
                    out["gpu_util"] = float(torch.cuda.utilization(index))
                except Exception:  # noqa: BLE001  no NVML (pynvml) here: utilisation rules stay silent
                    self._gpu_util_ok = False
        return out
