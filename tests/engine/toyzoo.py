"""Tiny architectures and datasets for engine tests, registered like any plugin.

Load with ``BESTIARY_PLUGINS=toyzoo`` (and this folder on ``PYTHONPATH``) in subprocesses, or with
``bestiary.get_host().add_plugin(toyzoo, "toyzoo")`` in-process.
"""

from __future__ import annotations

from bestiary import hookimpl

HERE = "toyzoo"


def toy_mlp(num_classes: int = 3, in_chans: int = 1, hidden: int = 16, dropout: float = 0.1, size: int = 4):
    import torch  # built only when a test trains it

    return torch.nn.Sequential(
        torch.nn.Flatten(),
        torch.nn.Linear(in_chans * size * size, hidden),
        torch.nn.ReLU(),
        torch.nn.Dropout(dropout),
        torch.nn.Linear(hidden, num_classes),
    )


def toy_cnn(num_classes: int = 3, in_chans: int = 1, width: int = 8):
    import torch

    return torch.nn.Sequential(
        torch.nn.Conv2d(in_chans, width, 3, padding=1),
        torch.nn.BatchNorm2d(width),
        torch.nn.ReLU(),
        torch.nn.AdaptiveAvgPool2d(1),
        torch.nn.Flatten(),
        torch.nn.Linear(width, num_classes),
    )


def blobs(n: int = 240, classes: int = 3, size: int = 4, seed: int = 0):
    """Gaussian blobs as 1 x size x size images; class c is shifted by c. Splits 60/20/20."""
    import torch

    from bestiary.engine.data import Data

    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, classes, (n,), generator=g)
    x = torch.randn(n, 1, size, size, generator=g) + y.view(-1, 1, 1, 1).float()
    ds = torch.utils.data.TensorDataset(x, y)
    a, b = int(n * 0.6), int(n * 0.8)
    return Data(
        train=torch.utils.data.Subset(ds, range(a)),
        validation=torch.utils.data.Subset(ds, range(a, b)),
        test=torch.utils.data.Subset(ds, range(b, n)),
        info={"num_classes": classes, "in_chans": 1, "input_size": [1, size, size]},
    )


class _Windows:
    def __init__(self, series, context: int, horizon: int) -> None:
        self.series, self.context, self.horizon = series, context, horizon
        self.per = series.shape[1] - context - horizon + 1

    def __len__(self) -> int:
        return self.series.shape[0] * self.per

    def __getitem__(self, i: int):
        s, t = divmod(i, self.per)
        row = self.series[s]
        history = row[: t + self.context]
        return {
            "past_target": row[t : t + self.context],
            "future_target": row[t + self.context : t + self.context + self.horizon],
            # the MASE scale: mean absolute one-step change of the history before the forecast
            "seasonal_error": (history[1:] - history[:-1]).abs().mean(),
        }


def sine(n_series: int = 4, length: int = 80, context: int = 12, horizon: int = 4, seed: int = 0):
    """Noisy sine waves; the last ``horizon`` * 2 steps of each series are held out by time."""
    import torch

    from bestiary.engine.data import Data

    g = torch.Generator().manual_seed(seed)
    t = torch.arange(length, dtype=torch.float32)
    phase = torch.rand(n_series, 1, generator=g) * 6.28
    series = 5 + torch.sin(t / 3 + phase) + 0.1 * torch.randn(n_series, length, generator=g)
    cut = length - 2 * horizon
    return Data(
        train=_Windows(series[:, :cut], context, horizon),
        validation=_Windows(series[:, cut - context - horizon : length - horizon], context, horizon),
        test=_Windows(series[:, length - context - horizon :], context, horizon),
        info={"prediction_length": horizon, "context_length": context, "freq": "D"},
    )


def linear_forecaster(prediction_length: int = 4, context_length: int = 12, freq: str = "D"):
    import torch

    class Linear(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.proj = torch.nn.Linear(context_length, prediction_length)

        def forward(self, batch):
            past = batch["past_target"]
            level = past.mean(-1, keepdim=True)
            return {"mean": level + self.proj(past - level)}

    return Linear()


@hookimpl
def register_architectures(register):
    register("toy_mlp", f"{HERE}:toy_mlp", task="image-classification", description="Two-layer MLP for tiny images",
             search_space={"lr": {"type": "float", "low": 1e-4, "high": 1e-1, "log": True}})
    register("toy_cnn", f"{HERE}:toy_cnn", task="image-classification", description="One conv block with BatchNorm")
    register("toy_linear", f"{HERE}:linear_forecaster", task="forecasting", description="Linear map from context to horizon")


@hookimpl
def register_datasets(register):
    register("blobs", f"{HERE}:blobs", task="image-classification", description="Gaussian blobs, 3 classes, 1x4x4")
    register("sine", f"{HERE}:sine", task="forecasting", description="Noisy sine waves, daily")
