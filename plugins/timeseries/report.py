"""What ``bestiary predict`` and ``bestiary evaluate`` write for forecasts: rows per item and
step (mean, median, quantiles), the inputs read from a series file, and a forecast plot."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch  # turns model outputs into rows; only prediction and evaluation import this module

from bestiary.extend import DataError

from .metrics import quantile
from .series import SeriesSet
from .windows import _Prepared


def forecast_rows(predictions: Mapping[str, Any], info: Mapping[str, Any]) -> list[dict[str, Any]]:
    """One row per window and step: ``index``, ``item_id``, ``timestamp``, ``step`` (1 to H),
    ``mean``, ``median`` and ``q<level>`` for each quantile level of the model."""
    mean = predictions["mean"].float().cpu()
    median = quantile(predictions, 0.5).float().cpu()
    levels = [float(q) for q in predictions.get("levels", [])]
    quantiles = predictions["quantiles"].float().cpu() if "quantiles" in predictions else None
    items = predictions.get("item_id")
    stamps = predictions.get("timestamps")
    rows = []
    for i in range(mean.shape[0]):
        for k in range(mean.shape[1]):
            row: dict[str, Any] = {"index": i}
            if items is not None:
                row["item_id"] = items[i]
            if stamps is not None:
                row["timestamp"] = stamps[i][k]
            row.update(step=k + 1, mean=float(mean[i, k]), median=float(median[i, k]))
            if quantiles is not None:
                row.update({f"q{q:g}": float(quantiles[i, j, k]) for j, q in enumerate(levels)})
            rows.append(row)
    return rows


def load_history(path: str, info: Mapping[str, Any]) -> dict[str, Any]:
    """One window per item of the file at ``path``, forecasting the ``prediction_length`` steps
    after its last value (after its last target when the model takes covariates: the rows after
    it hold the covariates' future values)."""
    from .files import read_series

    freq = str(info.get("freq") or "")
    h = int(info.get("prediction_length", 1))
    covariates = list(info.get("covariates") or [])
    items, freq, names = read_series(path, freq or None, covariates=covariates or [])
    if names != covariates:
        raise DataError(f"{path}: the model was trained with covariates {covariates}, the file gives {names}")
    series = SeriesSet(items, freq, h, info.get("context_length"), names, info.get("season_length"))
    prepared = _Prepared(series)
    past = int(info.get("past_length") or info.get("context_length") or 2 * h)
    windows, starts, stamps = [], [], []
    for i, item in enumerate(items):
        t = len(item.target)
        if covariates:
            seen = np.flatnonzero(np.isfinite(item.target))
            t = int(seen[-1]) + 1 if seen.size else 0
            if len(item.target) - t < h:
                raise DataError(
                    f"{path}: item {item.item_id!r} needs the covariates' values for the {h} steps to forecast: "
                    f"add {h} rows after its last target, with the target empty"
                )
        windows.append(prepared.window(i, t, past))
        index = series.timestamps(item, t + h)[t:]
        starts.append(str(index[0]))
        stamps.append([str(s) for s in index])
    batch: dict[str, Any] = {k: torch.stack([w[k] for w in windows]) for k in windows[0] if not k.startswith("future_")
                             or k == "future_time_feat"}
    batch.update(item_id=[it.item_id for it in items], forecast_start=starts, timestamps=stamps)
    return batch


@torch.no_grad()
def plot_forecasts(model: torch.nn.Module, dataset: Any, info: Mapping[str, Any], path: Path, *,
                   device: torch.device | None = None, max_items: int = 4) -> Path:
    """History, median, 80 % band (quantiles 0.1 to 0.9) and actual values of the last window of
    up to ``max_items`` items, one panel each, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    last: dict[int, int] = {}
    for k, (i, _) in enumerate(dataset.points):
        last[i] = k
    chosen = list(last.values())[:max_items]
    windows = [dataset[k] for k in chosen]
    batch = {key: torch.stack([w[key] for w in windows]).to(device or "cpu") for key in windows[0]}
    was_training = model.training
    model.eval()
    out = model(batch)
    model.train(was_training)
    median, lo, hi = (quantile(out, q).float().cpu().numpy() for q in (0.5, 0.1, 0.9))
    h = median.shape[1]
    fig, axes = plt.subplots(len(chosen), 1, figsize=(9, 2.6 * len(chosen)), squeeze=False)
    for ax, k, row in zip(axes[:, 0], chosen, range(len(chosen))):
        item, t = dataset.history(k)
        shown = min(t, max(4 * h, 52))
        stamps = dataset.prepared.series.timestamps(item, t + h)
        x_hist, x_fut = stamps[t - shown:t], stamps[t:t + h]
        ax.plot(x_hist, item.target[t - shown:t], color="black", lw=1, label="history")
        actual = item.target[t:t + h]
        ax.plot(x_fut[:len(actual)], actual, color="black", lw=1, ls="--", label="actual")
        ax.fill_between(x_fut, lo[row], hi[row], color="tab:blue", alpha=0.25, label="80% interval")
        ax.plot(x_fut, median[row], color="tab:blue", lw=1.5, label="median")
        ax.set_title(f"{item.item_id}: forecast from {x_fut[0].date()} ({info.get('freq', '')})", fontsize=9)
    axes[0, 0].legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
