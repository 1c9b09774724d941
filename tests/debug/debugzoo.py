"""Models and data built to make one debugger rule fire each, registered like any plugin.

Loaded in-process with ``host.add_plugin(debugzoo, "debugzoo")``.
"""

from __future__ import annotations

import time

from bestiary import hookimpl

HERE = "debugzoo"


def _mlp(act, depth: int, width: int, num_classes: int, size: int, in_chans: int = 1):  # type: ignore[no-untyped-def]
    import torch  # built only when a test trains it

    layers: list[torch.nn.Module] = [torch.nn.Flatten(), torch.nn.Linear(in_chans * size * size, width), act()]
    for _ in range(depth - 1):
        layers += [torch.nn.Linear(width, width), act()]
    layers.append(torch.nn.Linear(width, num_classes))
    return torch.nn.Sequential(*layers)


def deep_sigmoid(num_classes: int = 3, in_chans: int = 1, depth: int = 12, width: int = 16, size: int = 4):
    """A deep sigmoid MLP: each layer scales the gradient by at most 1/4, so the first ones vanish."""
    import torch

    return _mlp(torch.nn.Sigmoid, depth, width, num_classes, size, in_chans)


def dead_relu(num_classes: int = 3, in_chans: int = 1, width: int = 32, size: int = 4):
    """A ReLU MLP whose hidden biases start at -20: every unit is off for every input."""
    import torch

    model = _mlp(torch.nn.ReLU, 2, width, num_classes, size, in_chans)
    with torch.no_grad():
        for layer in list(model)[1:-1]:
            if isinstance(layer, torch.nn.Linear):
                layer.bias.fill_(-20.0)
    return model


def big_tanh(num_classes: int = 3, in_chans: int = 1, width: int = 32, size: int = 4, scale: float = 30.0):
    """A tanh MLP whose weights start ``scale`` times too large: the tanh units sit at +-1."""
    import torch

    model = _mlp(torch.nn.Tanh, 2, width, num_classes, size, in_chans)
    with torch.no_grad():
        for layer in model:
            if isinstance(layer, torch.nn.Linear):
                layer.weight.mul_(scale)
    return model


def diverging_mlp(num_classes: int = 3, in_chans: int = 1, width: int = 32, size: int = 4, gain: float = 30.0):
    """A ReLU MLP that sees its inputs ``gain`` times larger: the loss surface is so steep that plain
    SGD at a learning rate that suits the toy MLP (0.5) overshoots further at each step once warm-up
    has raised it, so the loss climbs by orders of magnitude after a few healthy steps."""
    import torch

    class Scale(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x * gain

    return torch.nn.Sequential(Scale(), _mlp(torch.nn.ReLU, 2, width, num_classes, size, in_chans))


def blobs_variant(n: int = 240, classes: int = 3, size: int = 4, seed: int = 0, shuffle_labels: bool = False,
                  keep_class0: float = 1.0, sleep_s: float = 0.0, stall_after: int = 0, stall_s: float = 0.0,
                  noise: float = 1.0):
    """toyzoo's Gaussian blobs, with switches that break them on purpose.

    :param shuffle_labels: permute the training labels (nothing left to learn).
    :param keep_class0: keep this fraction of class 0 in the training split (class imbalance).
    :param sleep_s: sleep this long in every training ``__getitem__`` (a slow data loader).
    :param stall_after: after this many training items, sleep ``stall_s`` once (a stall).
    """
    import torch

    from bestiary.engine.data import Data

    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, classes, (n,), generator=g)
    x = noise * torch.randn(n, 1, size, size, generator=g) + y.view(-1, 1, 1, 1).float()
    a, b = int(n * 0.6), int(n * 0.8)
    train_x, train_y = x[:a], y[:a].clone()
    if keep_class0 < 1.0:
        zeros = (train_y == 0).nonzero().flatten()
        drop = zeros[int(len(zeros) * keep_class0):]
        keep = torch.ones(a, dtype=torch.bool)
        keep[drop] = False
        train_x, train_y = train_x[keep], train_y[keep]
    if shuffle_labels:
        train_y = train_y[torch.randperm(len(train_y), generator=g)]

    class Train(torch.utils.data.Dataset):
        def __init__(self) -> None:
            self.calls = 0
            self.targets = train_y

        def __len__(self) -> int:
            return len(train_y)

        def __getitem__(self, i: int):  # type: ignore[no-untyped-def]
            self.calls += 1
            if sleep_s:
                time.sleep(sleep_s)
            if stall_after and self.calls == stall_after:
                time.sleep(stall_s)
            return train_x[i], train_y[i]

    ds = torch.utils.data.TensorDataset(x, y)
    return Data(
        train=Train(),
        validation=torch.utils.data.Subset(ds, range(a, b)),
        test=torch.utils.data.Subset(ds, range(b, n)),
        info={"num_classes": classes, "in_chans": 1, "input_size": [1, size, size]},
    )


@hookimpl
def register_architectures(register):  # type: ignore[no-untyped-def]
    for name, fn, text in (("deep_sigmoid", "deep_sigmoid", "Deep sigmoid MLP (vanishing gradients)"),
                           ("dead_relu_mlp", "dead_relu", "ReLU MLP with biases of -20 (dead units)"),
                           ("big_tanh", "big_tanh", "Tanh MLP with weights 30x too large (saturation)"),
                           ("diverging_mlp", "diverging_mlp", "ReLU MLP on 30x inputs (SGD diverges: loss explosion)")):
        register(name, f"{HERE}:{fn}", task="image-classification", description=text,
                 metadata={"conformance": {"info": {"in_chans": 1, "input_size": [1, 4, 4]}}})


@hookimpl
def register_datasets(register):  # type: ignore[no-untyped-def]
    register("blobs_variant", f"{HERE}:blobs_variant", task="image-classification",
             description="Gaussian blobs with switches: shuffled labels, imbalance, slow loading, stalls")
