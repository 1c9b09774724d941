"""Task adapters: how a batch becomes a loss and predictions, and which metrics a task reports.

Tasks are registry entries (``register_tasks``); architectures and datasets declare the task they
serve, and a run refuses a mismatch before building anything.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch  # task adapters compute losses; only runs import this module

from ..errors import ConfigError

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

    def split_batch(self, batch: Any, n: int) -> list[Any]:
        """``batch`` cut into ``n`` micro-batches of consecutive samples, each shaped as a batch
        (the pipeline strategy feeds them one by one; its loss is the mean of theirs).

        The default cuts every tensor whose first dimension is :meth:`batch_size` and every list
        of that many per-sample values (ids, timestamps), inside tuples, lists and dicts, and gives
        each micro-batch anything else unchanged. Sizes differ by at most one sample when ``n``
        does not divide the batch. Override it for a batch the default cannot read.
        """
        return split_samples(batch, n, self.batch_size(batch))

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


def split_samples(batch: Any, n: int, size: int | None = None) -> list[Any]:
    """``batch`` (tensors, possibly inside tuples, lists and dicts) cut into ``n`` micro-batches
    along the sample dimension; :meth:`Task.split_batch` for any task.

    :param size: samples in the batch; default: the first dimension of its first tensor.
    :raises ValueError: when ``n`` is not between 1 and the number of samples.
    """
    if size is None:
        size = _first_dim(batch)
    if not 1 <= n <= max(size, 1):
        raise ConfigError(f"cannot cut a batch of {size} samples into {n} micro-batches; "
                         f"choose between 1 and {size} (strategy_options.n_microbatches)")
    bounds = sample_bounds(size, n)

    def cut(x: Any, i: int) -> Any:
        if isinstance(x, torch.Tensor):
            return x[bounds[i]:bounds[i + 1]] if x.dim() > 0 and x.shape[0] == size else x
        if isinstance(x, Mapping):
            return {k: cut(v, i) for k, v in x.items()}
        if isinstance(x, Sequence) and not isinstance(x, (str, bytes)):
            if len(x) == size and not any(isinstance(v, (torch.Tensor, Mapping, list, tuple)) for v in x):
                return x[bounds[i]:bounds[i + 1]]  # one value per sample (item ids, timestamps)
            parts = [cut(v, i) for v in x]
            kind: Any = type(x)
            return kind(*parts) if hasattr(x, "_fields") else kind(parts)  # named tuples take fields
        return x

    return [cut(batch, i) for i in range(n)]


def sample_bounds(size: int, n: int) -> list[int]:
    """Where each of ``n`` micro-batches of a ``size``-sample batch starts, and the end: the sizes
    ``torch.tensor_split`` gives (the first ``size % n`` one larger)."""
    q, r = divmod(size, n)
    bounds = [0]
    for i in range(n):
        bounds.append(bounds[-1] + q + (1 if i < r else 0))
    return bounds


def _first_dim(batch: Any) -> int:
    if isinstance(batch, torch.Tensor):
        return int(batch.shape[0])
    values = batch.values() if isinstance(batch, Mapping) else batch if isinstance(batch, (list, tuple)) else ()
    for v in values:
        if isinstance(v, (torch.Tensor, Mapping, list, tuple)):
            try:
                return _first_dim(v)
            except ValueError:
                continue
    raise ValueError(f"a batch of {type(batch).__name__} holds no tensor to count its samples by; "
                     "pass the size, or override Task.split_batch")
