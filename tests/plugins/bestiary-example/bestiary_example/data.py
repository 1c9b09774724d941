"""Synthetic classification data: Gaussian blobs, the same for the same seed."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Blobs:
    """The splits and what a task needs to know about them.

    :param train: ``torch.utils.data.TensorDataset`` of ``(features (num_features,), label ())``.
    :param test: the same, for evaluation.
    :param info: ``num_features`` and ``num_classes``.
    """

    train: Any
    test: Any
    info: dict[str, int]


def make_blobs(
    num_samples: int = 256,
    num_features: int = 8,
    num_classes: int = 3,
    seed: int = 0,
    test_fraction: float = 0.25,
    spread: float = 3.0,
) -> Blobs:
    """Draw ``num_samples`` points around ``num_classes`` random centres; a quarter go to ``test``."""
    import torch  # building data needs torch; registering the entry does not

    generator = torch.Generator().manual_seed(seed)
    centres = torch.randn(num_classes, num_features, generator=generator) * spread
    labels = torch.randint(num_classes, (num_samples,), generator=generator)
    features = centres[labels] + torch.randn(num_samples, num_features, generator=generator)
    n_test = int(num_samples * test_fraction)
    dataset = torch.utils.data.TensorDataset
    return Blobs(
        train=dataset(features[n_test:], labels[n_test:]),
        test=dataset(features[:n_test], labels[:n_test]),
        info={"num_features": num_features, "num_classes": num_classes},
    )
