"""The forecasting task: batches of past and future windows, forecasts as a mean and quantiles.

A batch is a dict: ``past_target [B, P]``, ``future_target [B, H]``, optional masks
``past_observed [B, P]`` / ``future_observed [B, H]`` (1 where a value is present), optional
``past_time_feat [B, P, F]`` / ``future_time_feat [B, H, F]`` (calendar features, age, covariates),
``seasonal_error [B]`` (the MASE scale of each window's history) and ``item [B]``. A model's forward
returns a dict: in training mode ``loss`` may be all (a likelihood); in eval mode ``mean [B, H]``,
optionally ``quantiles [B, Q, H]`` at ``levels`` (Q floats). A model without its own loss is
trained on the masked absolute error of its mean.

Datasets whose splits have ``for_model(model, batch_size=..., seed=...)`` are cut again for the
built model (:meth:`Forecasting.prepare_data`): the architecture decides how much past it reads.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch  # task adapters compute losses; only runs import this module

from bestiary.extend import ConfigError, Data, Task, sample_bounds

#: Keys of the dataset info that architecture factories may take.
MODEL_KWARGS = ("prediction_length", "context_length", "freq", "num_time_features", "season_length")


def observed(batch: Mapping[str, torch.Tensor], key: str = "future") -> torch.Tensor:
    target = batch[f"{key}_target"]
    return batch.get(f"{key}_observed", torch.ones_like(target)).to(target.dtype)


class Forecasting(Task):
    name = "forecasting"
    default_metrics = ("mae", "rmse", "mase", "mean_wql")
    monitor = "mean_wql"
    mode = "min"
    report_metrics = ("mape", "smape", "nd", "msis", "wql", "coverage")

    def model_kwargs(self, info: Mapping[str, Any]) -> dict[str, Any]:
        return {k: info[k] for k in MODEL_KWARGS if k in info}

    def prepare_data(self, data: Data, model: torch.nn.Module, *, batch_size: int | None = None,
                     seed: int | None = None) -> Data:
        """``data`` with each split that can be re-cut (``for_model``) cut for ``model``."""
        import dataclasses

        horizon = getattr(model, "prediction_length", None)
        if isinstance(horizon, int) and horizon != data.info.get("prediction_length", horizon):
            raise ConfigError(
                f"the model forecasts {horizon} steps but the dataset's windows have {data.info['prediction_length']}; "
                f"use data with prediction_length={horizon} (--set data.prediction_length={horizon})"
            )
        changes = {}
        for split in ("train", "validation", "test"):
            dataset = getattr(data, split)
            if hasattr(dataset, "for_model"):
                kwargs = {"batch_size": batch_size, "seed": seed} if split == "train" else {}
                changes[split] = dataset.for_model(model, **kwargs)
        past = getattr(model, "past_length", None)
        info = {**data.info, "past_length": past} if isinstance(past, int) else data.info
        return dataclasses.replace(data, info=info, **changes)

    def batch_size(self, batch: Any) -> int:
        return int(batch["past_target"].shape[0])

    def split_batch(self, batch: Any, n: int) -> list[Any]:
        """The dict cut into ``n`` dicts of consecutive windows: every per-window tensor ``[B, ...]``
        and per-window list (``item_id``, ``forecast_start``, ``timestamps``) is cut; other values
        (quantile ``levels``) go to each part unchanged."""
        size = self.batch_size(batch)
        if not 1 <= n <= size:
            raise ConfigError(f"cannot cut a batch of {size} windows into {n} micro-batches; "
                             f"choose between 1 and {size} (strategy_options.n_microbatches)")
        bounds = sample_bounds(size, n)
        parts: list[dict[str, Any]] = [{} for _ in range(n)]
        for key, value in batch.items():
            per_window = (isinstance(value, torch.Tensor) and value.dim() > 0 and value.shape[0] == size) or \
                (isinstance(value, (list, tuple)) and len(value) == size)
            for i, part in enumerate(parts):
                part[key] = value[bounds[i]:bounds[i + 1]] if per_window else value
        return parts

    def loss(self, model: torch.nn.Module, batch: Any, *, label_smoothing: float = 0.0) -> tuple[torch.Tensor, Any]:
        out = model(batch)
        if "loss" in out:
            return out["loss"], out
        mask = observed(batch)
        err = (out["mean"].float() - batch["future_target"]).abs() * mask
        return err.sum() / mask.sum().clamp_min(1), out

    def predict(self, model: torch.nn.Module, batch: Any) -> dict[str, Any]:
        out = dict(model({k: v for k, v in batch.items() if not k.startswith("future_") or k == "future_time_feat"}))
        for key in ("item_id", "forecast_start", "timestamps"):  # carried through for the rows
            if key in batch:
                out[key] = batch[key]
        return out

    def sample_batch(self, info: Mapping[str, Any], batch_size: int = 2) -> dict[str, torch.Tensor]:
        t = int(info.get("context_length", 24))
        h = int(info.get("prediction_length", 6))
        f = int(info.get("num_time_features", 0))
        batch = {"past_target": torch.randn(batch_size, t).abs() + 1, "past_observed": torch.ones(batch_size, t),
                 "future_target": torch.randn(batch_size, h).abs() + 1, "future_observed": torch.ones(batch_size, h),
                 "seasonal_error": torch.rand(batch_size) + 0.5}
        if f:
            batch["past_time_feat"] = torch.randn(batch_size, t, f)
            batch["future_time_feat"] = torch.randn(batch_size, h, f)
        return batch

    def sample_outputs(self, info: Mapping[str, Any], batch: Any) -> dict[str, Any]:
        """Made-up forecasts for a batch (the conformance kit checks metrics with them)."""
        future = batch["future_target"].float()
        levels = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9]
        spread = torch.linspace(-1.5, 1.5, len(levels)).view(1, -1, 1)
        median = future + torch.randn_like(future)
        return {"mean": median + 0.25, "quantiles": median.unsqueeze(1) + spread, "levels": levels}

    def format_predictions(self, predictions: Mapping[str, Any], info: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
        from .report import forecast_rows

        return forecast_rows(predictions, info or {})

    def load_inputs(self, path: str, info: Mapping[str, Any]) -> dict[str, Any]:
        """The history of each series in a long CSV/Parquet file or gluonts JSON lines (see
        ``series_file``), cut into one window per item that forecasts the steps after its end."""
        from .report import load_history

        return load_history(path, info)

    def write_report(self, results: Mapping[str, Any], info: Mapping[str, Any], directory: Path, *,
                     model: torch.nn.Module | None = None, dataset: Any = None,
                     device: torch.device | None = None) -> list[Path]:
        """A forecast plot (history, median, 80 % band, actual values) of a few windows."""
        if model is None or dataset is None or not hasattr(dataset, "history"):
            return []
        from .report import plot_forecasts

        return [plot_forecasts(model, dataset, info, directory / "forecasts.png", device=device)]
