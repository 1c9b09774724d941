"""The metric protocol: accumulate statistics over batches, then compute.

Most metrics keep a vector of additive statistics (``reduction = "sum"``): they agree with
themselves whether fed in one go or in many batches, and strategies reduce them across the
data-parallel replicas of the run's topology with one all-reduce (processes of one tensor- or
pipeline-parallel replica evaluate the same samples and are counted once). Metrics that need every
sample (ROC-AUC) keep rows instead (``reduction = "cat"``), which strategies gather from every
replica.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable
from typing import Any

import torch  # metrics accumulate tensors; only runs import this module

from ..errors import ConfigError
from ..registry import Entry
from ..registry.direction import metric_direction


class Metric(ABC):
    """Base class of metrics.

    Subclasses set :attr:`size` (length of the statistics vector, or row width for ``cat``) and
    implement :meth:`stats` (the statistics of one batch) and :meth:`value` (the metric from the
    reduced statistics).

    :cvar reduction: ``"sum"``: :meth:`stats` returns a vector ``[size]`` that is summed;
        ``"cat"``: it returns rows ``[n, size]`` that are concatenated.
    :cvar higher_is_better: what the metric's entry declares in its metadata, which is what runs,
        tuners and benchmarks read (:func:`monitor_mode`); the conformance kit checks both agree.
    """

    size: int = 2
    reduction: str = "sum"
    higher_is_better: bool = True

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.total = torch.zeros(self.size, dtype=torch.float64)
        self._rows: list[torch.Tensor] = []

    @abstractmethod
    def stats(self, outputs: Any, batch: Any) -> torch.Tensor:
        """Statistics of one batch: a float64 vector ``[size]``, or rows ``[n, size]`` for ``cat``."""

    @abstractmethod
    def value(self, state: torch.Tensor) -> Any:
        """The metric (a float, or a JSON value such as a matrix) from the reduced statistics."""

    def update(self, outputs: Any, batch: Any) -> None:
        stats = self.stats(outputs, batch).detach().to("cpu", torch.float64)
        if self.reduction == "cat":
            self._rows.append(stats.reshape(-1, self.size))
        else:
            self.total += stats

    @property
    def state(self) -> torch.Tensor:
        """What this process accumulated: the summed vector, or all rows."""
        if self.reduction == "cat":
            return torch.cat(self._rows) if self._rows else torch.zeros(0, self.size, dtype=torch.float64)
        return self.total

    def compute(self, state: torch.Tensor | None = None) -> Any:
        """The metric from ``state`` (reduced over processes) or from this process's own."""
        value = self.value(self.state if state is None else state)
        if isinstance(value, torch.Tensor):
            return float(value) if value.numel() == 1 else value.tolist()
        return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else value


def monitor_mode(monitor: str, entries: Iterable[Entry]) -> str:
    """``max`` or ``min`` for the metric a run monitors, as its entry declares (``loss``: ``min``).

    :param monitor: the run's monitor: ``loss`` or the name of one of ``entries``.
    :param entries: the run's metric entries.
    :raises ConfigError: when the monitored value is no score.
    """
    if monitor == "loss":
        return "min"
    entry = next(e for e in entries if monitor in (e.name, e.qualified_name))
    found = metric_direction(entry)
    if found is None:
        raise ConfigError(f"metric {monitor!r} is no score to monitor (its entry declares no direction); "
                          "choose another --monitor, or give --mode max|min")
    return found
