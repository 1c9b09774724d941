"""Task adapters: how a batch becomes a loss and predictions, and which metrics a task reports.

Tasks are registry entries (``register_tasks``); architectures and datasets declare the task they
serve, and a run refuses a mismatch before building anything.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch  # task adapters compute losses; only runs import this module

if TYPE_CHECKING:
    from .data import Data


class Task(ABC):
    """Base class of task adapters.

    :cvar default_metrics: metric names reported when a run names none.
    :cvar monitor: default validation metric for best-model tracking and early stopping.
    :cvar mode: ``"max"`` or ``"min"`` for :attr:`monitor`.
    :cvar report_metrics: metrics ``bestiary evaluate`` adds, when registered, for the report.
    """

    name = "task"
    default_metrics: tuple[str, ...] = ()
    monitor = "loss"
    mode = "min"
    report_metrics: tuple[str, ...] = ()

    def write_report(self, results: Mapping[str, Any], info: Mapping[str, Any], directory: Path) -> list[Path]:
        """Write the task's evaluation report (tables, plots) into ``directory``; return the files.

        The default writes nothing.
        """
        return []

    def prepare_data(self, data: Data, model: torch.nn.Module, *, batch_size: int | None = None,
                     seed: int | None = None) -> Data:
        """Adapt ``data`` to the built ``model`` before training or evaluation (a forecaster cuts
        its series windows to the context the model reads); return the data to use.

        The default returns ``data`` unchanged. Training and ``bestiary evaluate`` both call it, so
        a saved model sees the data cut as it was trained on.

        :param data: the dataset's built data.
        :param model: the built (not yet wrapped) model.
        :param batch_size: the run's batch size.
        :param seed: the run's seed.
        """
        return data

    def model_kwargs(self, info: Mapping[str, Any]) -> dict[str, Any]:
        """Architecture factory arguments implied by the dataset's ``info`` (e.g. ``num_classes``)."""
        return {}

    def to_device(self, batch: Any, device: torch.device, channels_last: bool = False) -> Any:
        """Move a batch to ``device``; tensors of rank 4 go channels-last when asked."""

        def move(x: Any) -> Any:
            if isinstance(x, torch.Tensor):
                x = x.to(device, non_blocking=True)
                if channels_last and x.dim() == 4:
                    x = x.contiguous(memory_format=torch.channels_last)
                return x
            if isinstance(x, Mapping):
                return {k: move(v) for k, v in x.items()}
            if isinstance(x, (list, tuple)):
                return type(x)(move(v) for v in x)
            return x

        return move(batch)

    @abstractmethod
    def batch_size(self, batch: Any) -> int:
        """Number of samples in ``batch``."""

    @abstractmethod
    def loss(self, model: torch.nn.Module, batch: Any, *, label_smoothing: float = 0.0) -> tuple[torch.Tensor, Any]:
        """Return ``(loss, outputs)`` for a training or evaluation batch."""

    @abstractmethod
    def predict(self, model: torch.nn.Module, batch: Any) -> Any:
        """Predictions for a batch without targets (inference)."""

    @abstractmethod
    def sample_batch(self, info: Mapping[str, Any], batch_size: int = 2) -> Any:
        """A small random batch shaped as this task's datasets yield (for conformance checks)."""

    @abstractmethod
    def format_predictions(self, predictions: Any, info: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
        """Rows of JSON values for ``bestiary predict``; ``info`` is the dataset's info saved with
        the model (class names, frequencies)."""

    @abstractmethod
    def load_inputs(self, path: str, info: Mapping[str, Any]) -> Any:
        """Read inputs for ``bestiary predict`` from ``path`` into one batch."""
