"""Forecasting: batches of past and future windows, forecasts as a mean and optional quantiles.

A batch is a dict of tensors: ``past_target [B, T]``, ``future_target [B, H]`` and optional
``past_observed [B, T]`` / ``future_observed [B, H]`` masks (1 where a value is present). A model's
forward takes the batch and returns a dict with ``mean [B, H]``, optionally ``quantiles
[B, Q, H]`` with ``levels`` (the Q quantile levels), and ``loss`` when the model computes its own
training loss (a likelihood, say); otherwise the task trains on the masked absolute error.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from bestiary.engine.metrics import Metric
from bestiary.engine.tasks import Task


def _mask(batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
    future = batch["future_target"]
    return batch.get("future_observed", torch.ones_like(future)).to(future.dtype)


class Forecasting(Task):
    name = "forecasting"
    default_metrics = ("mae", "rmse")
    monitor = "mae"
    mode = "min"

    def model_kwargs(self, info: Mapping[str, Any]) -> dict[str, Any]:
        return {k: info[k] for k in ("prediction_length", "context_length", "freq") if k in info}

    def batch_size(self, batch: Any) -> int:
        return int(batch["past_target"].shape[0])

    def loss(self, model: torch.nn.Module, batch: Any, *, label_smoothing: float = 0.0) -> tuple[torch.Tensor, Any]:
        out = model(batch)
        if "loss" in out:
            return out["loss"], out
        mask = _mask(batch)
        err = (out["mean"].float() - batch["future_target"]).abs() * mask
        return err.sum() / mask.sum().clamp_min(1), out

    def predict(self, model: torch.nn.Module, batch: Any) -> dict[str, Any]:
        return model({k: v for k, v in batch.items() if not k.startswith("future_")})

    def sample_batch(self, info: Mapping[str, Any], batch_size: int = 2) -> dict[str, torch.Tensor]:
        t = int(info.get("context_length", 24))
        h = int(info.get("prediction_length", 6))
        return {"past_target": torch.randn(batch_size, t).abs(), "past_observed": torch.ones(batch_size, t),
                "future_target": torch.randn(batch_size, h).abs(), "future_observed": torch.ones(batch_size, h)}

    def format_predictions(self, predictions: Mapping[str, Any], info: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
        rows = []
        mean = predictions["mean"].float()
        for i in range(mean.shape[0]):
            row: dict[str, Any] = {"index": i, "mean": mean[i].tolist()}
            if "quantiles" in predictions:
                levels = predictions["levels"]
                row["quantiles"] = {str(q): predictions["quantiles"][i, j].float().tolist() for j, q in enumerate(levels)}
            rows.append(row)
        return rows

    def load_inputs(self, path: str, info: Mapping[str, Any]) -> dict[str, torch.Tensor]:
        """Past values from JSON lines with a ``target`` list per series; the last
        ``context_length`` values of each are used, missing ones (null) masked."""
        t = int(info.get("context_length", 24))
        series = []
        for line in Path(path).read_text().splitlines():
            if line.strip():
                series.append(json.loads(line)["target"])
        if not series:
            raise ValueError(f"{path}: no series; write one JSON object per line with a 'target' list")
        past = torch.zeros(len(series), t)
        observed = torch.zeros(len(series), t)
        for i, values in enumerate(series):
            tail = values[-t:]
            for j, v in enumerate(tail, start=t - len(tail)):
                if v is not None:
                    past[i, j], observed[i, j] = float(v), 1.0
        return {"past_target": past, "past_observed": observed}


class MAE(Metric):
    """Mean absolute error of the mean forecast, over observed future points."""

    size = 2
    higher_is_better = False

    def stats(self, outputs: Mapping[str, torch.Tensor], batch: Any) -> torch.Tensor:
        mask = _mask(batch)
        err = ((outputs["mean"].float() - batch["future_target"]).abs() * mask).sum()
        return torch.stack([err.double(), mask.sum().double()])

    def value(self, total: torch.Tensor) -> float:
        return float(total[0] / total[1]) if total[1] else float("nan")


class RMSE(Metric):
    """Root mean squared error of the mean forecast, over observed future points."""

    size = 2
    higher_is_better = False

    def stats(self, outputs: Mapping[str, torch.Tensor], batch: Any) -> torch.Tensor:
        mask = _mask(batch)
        err = (((outputs["mean"].float() - batch["future_target"]) ** 2) * mask).sum()
        return torch.stack([err.double(), mask.sum().double()])

    def value(self, total: torch.Tensor) -> float:
        return float((total[0] / total[1]).sqrt()) if total[1] else float("nan")
