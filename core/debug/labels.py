"""Class counts of a dataset's labels, read without loading its inputs where the dataset allows."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from typing import Any

#: Datasets larger than this are not scanned item by item (that would load every input).
SCAN_LIMIT = 20_000


def class_counts(dataset: Any, info: Mapping[str, Any]) -> dict[str, Any] | None:
    """``{"counts": [n per class], "classes": [names]}`` for a classification dataset, else ``None``.

    Labels come from, in order: a ``targets`` or ``labels`` attribute, the ``items`` of an image list
    (``(source, label)`` pairs), a ``TensorDataset``'s second tensor, through ``Subset`` indices;
    failing those, each item's second element when the dataset is small (at most ``SCAN_LIMIT``).
    """
    num_classes = info.get("num_classes")
    if not isinstance(num_classes, int) or num_classes < 2:
        return None
    labels = _labels(dataset)
    if labels is None:
        return None
    counts = Counter(labels)
    classes = [str(c) for c in (info.get("classes") or range(num_classes))]
    if len(classes) != num_classes:
        classes = [str(c) for c in range(num_classes)]
    return {"counts": [int(counts.get(i, 0)) for i in range(num_classes)], "classes": classes}


def _labels(dataset: Any) -> list[int] | None:
    for attr in ("targets", "labels"):
        values = getattr(dataset, attr, None)
        if values is not None and not callable(values):
            return _ints(values)
    items = getattr(dataset, "items", None)
    if isinstance(items, list) and items and isinstance(items[0], tuple) and len(items[0]) == 2:
        return _ints([label for _, label in items])
    tensors = getattr(dataset, "tensors", None)
    if isinstance(tensors, tuple) and len(tensors) >= 2:
        return _ints(tensors[1])
    inner, indices = getattr(dataset, "dataset", None), getattr(dataset, "indices", None)
    if inner is not None and indices is not None:
        labels = _labels(inner)
        return None if labels is None else [labels[i] for i in indices]
    try:
        n = len(dataset)
    except TypeError:
        return None
    if n > SCAN_LIMIT:
        return None
    out = []
    for i in range(n):
        item = dataset[i]
        if not isinstance(item, (tuple, list)) or len(item) < 2:
            return None
        out.append(item[1])
    return _ints(out)


def _ints(values: Any) -> list[int] | None:
    if hasattr(values, "tolist"):
        values = values.tolist()
    try:
        out = [int(v) for v in values]
    except (TypeError, ValueError):  # soft labels (mixup) or anything else: no counts
        return None
    return out
