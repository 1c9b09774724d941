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


#: par_forecaster: stages begin at "mid" and "out"
FORECAST_PARALLEL = {"pipeline_splits": ["mid", "out"]}


def par_forecaster(prediction_length: int = 4, context_length: int = 12, freq: str = "D", hidden: int = 16):
    """A forecaster that reads the task's dict batch and returns a dict: the pipeline strategy
    must flatten its arguments for the stages and rebuild its outputs for the loss."""
    import torch

    class ParForecaster(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.inp = torch.nn.Linear(context_length, hidden)
            self.mid = torch.nn.Linear(hidden, hidden)
            self.out = torch.nn.Linear(hidden, prediction_length)

        def forward(self, batch):
            past = batch["past_target"]
            level = past.mean(-1, keepdim=True)  # crosses both stage boundaries
            h = torch.relu(self.mid(torch.relu(self.inp(past - level))))
            return {"mean": level + self.out(h)}

    return ParForecaster()


@hookimpl
def register_architectures(register):  # type: ignore[no-untyped-def]
    register("par_mlp", par_mlp, task="image-classification", description="MLP with tensor and pipeline layouts",
             metadata={"parallel": PARALLEL})
    register("par_forecaster", par_forecaster, task="forecasting", description="MLP forecaster with a pipeline layout",
             metadata={"parallel": FORECAST_PARALLEL})
