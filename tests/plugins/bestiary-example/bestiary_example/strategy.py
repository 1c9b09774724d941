"""The simplest strategy: one process, one device, nothing to reduce."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass
class LocalStrategy:
    """Runs everything in this process on ``device``.

    :param device: where the model goes (``"cpu"``, ``"cuda:0"``).
    """

    device: str = "cpu"
    rank: int = 0
    world_size: int = 1

    def prepare_model(self, model: Any) -> Any:
        """Move the model to :attr:`device`; one process needs no wrapper."""
        return model.to(self.device)

    def reduce(self, value: Any) -> Any:
        """Combine a value across processes: with one process, it is already complete."""
        return value
