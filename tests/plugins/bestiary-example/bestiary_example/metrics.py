"""Accuracy over many batches: the same value as over their concatenation."""

from __future__ import annotations

from typing import Any


class Accuracy:
    """Count correct predictions over batches; :meth:`compute` gives the fraction.

    ``preds`` are scores of shape ``(N, num_classes)`` or labels of shape ``(N,)``; ``targets``
    are labels of shape ``(N,)``. Tensors and nested sequences both work.
    """

    def __init__(self) -> None:
        self.correct = 0
        self.total = 0

    def reset(self) -> None:
        self.correct = 0
        self.total = 0

    def update(self, preds: Any, targets: Any) -> None:
        labels = [_label(p) for p in _as_list(preds)]
        truth = [int(t) for t in _as_list(targets)]
        if len(labels) != len(truth):
            raise ValueError(f"accuracy: {len(labels)} predictions for {len(truth)} targets")
        self.correct += sum(p == t for p, t in zip(labels, truth, strict=True))
        self.total += len(truth)

    def compute(self) -> float:
        if not self.total:
            raise ValueError("accuracy: no samples yet; call update() first")
        return self.correct / self.total


def _as_list(values: Any) -> list[Any]:
    return values.tolist() if hasattr(values, "tolist") else list(values)


def _label(pred: Any) -> int:
    if isinstance(pred, (list, tuple)):
        return max(range(len(pred)), key=pred.__getitem__)
    return int(pred)
