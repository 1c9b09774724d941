"""Tiny architectures that declare tensor and pipeline layouts, registered like any plugin."""

from __future__ import annotations

from bestiary import hookimpl

#: Sequential(Flatten, Linear, ReLU, Linear, ReLU, Linear): columns then rows, split before "3"
PARALLEL = {"tensor_plan": {"1": "colwise", "3": "rowwise"}, "pipeline_splits": ["3", "5"]}


def par_mlp(num_classes: int = 3, in_chans: int = 1, size: int = 4, hidden: int = 16):
    import torch  # built only when a test trains it

    return torch.nn.Sequential(
        torch.nn.Flatten(),
        torch.nn.Linear(in_chans * size * size, hidden),
        torch.nn.ReLU(),
        torch.nn.Linear(hidden, hidden),
        torch.nn.ReLU(),
        torch.nn.Linear(hidden, num_classes),
    )


@hookimpl
def register_architectures(register):  # type: ignore[no-untyped-def]
    register("par_mlp", par_mlp, task="image-classification", description="MLP with tensor and pipeline layouts",
             metadata={"parallel": PARALLEL})
