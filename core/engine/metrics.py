"""The metric protocol: accumulate additive statistics over batches, then compute.

Keeping the state a vector of sums makes a metric agree with itself whether fed in one go or in
many batches, and lets strategies reduce it across processes with one all-reduce.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

import torch  # metrics accumulate tensors; only runs import this module


class Metric(ABC):
    """Base class of metrics.

    Subclasses set :attr:`size` (length of the statistics vector) and implement :meth:`stats`
    (the additive statistics of one batch) and :meth:`value` (the metric from summed statistics).
    """

    size: int = 2
    higher_is_better: bool = True

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.total = torch.zeros(self.size, dtype=torch.float64)

    @abstractmethod
    def stats(self, outputs: Any, batch: Any) -> torch.Tensor:
        """Additive statistics of one batch, a float64 vector of length :attr:`size`."""

    @abstractmethod
    def value(self, total: torch.Tensor) -> float:
        """The metric from statistics summed over batches (and processes)."""

    def update(self, outputs: Any, batch: Any) -> None:
        self.total += self.stats(outputs, batch).detach().to("cpu", torch.float64)

    def compute(self, total: torch.Tensor | None = None) -> float:
        return float(self.value(self.total if total is None else total))
