"""The tiny MLP. Importing this module imports torch: only building an entry does."""

from __future__ import annotations

import torch


def build_mlp(in_features: int = 8, hidden: int = 16, num_classes: int = 3) -> torch.nn.Module:
    """A perceptron with one hidden layer.

    :param in_features: length of each input vector, shape ``(N, in_features)``.
    :param hidden: width of the hidden layer.
    :param num_classes: number of output logits, shape ``(N, num_classes)``.
    """
    return torch.nn.Sequential(
        torch.nn.Linear(in_features, hidden),
        torch.nn.ReLU(),
        torch.nn.Linear(hidden, num_classes),
    )
