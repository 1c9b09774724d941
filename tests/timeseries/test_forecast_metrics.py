"""The forecasting metrics agree with gluonts' own Evaluator on the same forecasts, and undefined
terms (constant histories, missing targets) follow the documented rule."""

from __future__ import annotations

import logging
import math

import numpy as np
import pandas as pd
import pytest
import torch

from bestiary.engine.data import make_loader
from bestiary.plugins.timeseries import metrics as M
from bestiary.plugins.timeseries.deepar.model import sample_forecast
from bestiary.plugins.timeseries.series import Item, SeriesSet
from bestiary.plugins.timeseries.windows import backtest_data

FREQ, H = "MS", 6


def _series(seed: int = 0) -> SeriesSet:
    rng = np.random.default_rng(seed)
    items = []
    for k in range(5):
        n = 60 + 7 * k
        t = np.arange(n)
        y = 50 + 10 * k + 5 * np.sin(2 * np.pi * t / 12) + rng.normal(0, 1.5, n)
        y[rng.choice(n, 4, replace=False)] = np.nan  # missing values, in history and in the test horizon
        items.append(Item(f"s{k}", pd.Timestamp("2000-01-01"), y.astype(np.float32)))
    items[2].target[-2] = np.nan
    return SeriesSet(items, FREQ, H)


def _forecasts(batch: dict[str, torch.Tensor], seed: int = 1) -> tuple[torch.Tensor, dict]:
    g = torch.Generator().manual_seed(seed)
    center = torch.nan_to_num(batch["future_target"]) + torch.randn(batch["future_target"].shape, generator=g) * 2
    samples = center.unsqueeze(1) + torch.randn(center.shape[0], 200, H, generator=g) * 2.5
    return samples, sample_forecast(samples)


def _gluonts(series: SeriesSet, dataset, samples: torch.Tensor) -> dict[str, float]:
    from gluonts.evaluation import Evaluator
    from gluonts.model.forecast import SampleForecast

    truths, forecasts = [], []
    for k in range(len(dataset)):
        item, t = dataset.history(k)
        index = pd.period_range(pd.Period(item.start, freq="M"), periods=min(t + H, len(item.target)), freq="M")
        truths.append(pd.DataFrame(item.target[: len(index)].astype(np.float64), index=index))
        forecasts.append(SampleForecast(samples[k].double().numpy(), start_date=index[t], item_id=item.item_id))
    evaluator = Evaluator(quantiles=M.LEVELS, num_workers=0)
    agg, _ = evaluator(iter(truths), iter(forecasts), num_series=len(truths))
    return agg


@pytest.mark.parametrize("split", ["test", "validation"])
def test_metrics_agree_with_gluonts_evaluator(split: str) -> None:
    series = _series()
    data = backtest_data(series, test_windows=2, val_windows=1)
    dataset = data.split(split)
    (batch,) = list(make_loader(dataset, batch_size=len(dataset), shuffle=False, seed=0))
    samples, outputs = _forecasts(batch)
    agg = _gluonts(series, dataset, samples)

    def ours(cls: type, parts: int = 3) -> object:
        metric = cls()
        for chunk in np.array_split(np.arange(len(dataset)), parts):  # accumulated over batches
            idx = torch.as_tensor(chunk)
            metric.update({"mean": outputs["mean"][idx], "quantiles": outputs["quantiles"][idx],
                           "levels": outputs["levels"]}, {k: v[idx] for k, v in batch.items()})
        return metric.compute()

    close = {"rel": 1e-5, "abs": 1e-9}
    assert ours(M.MASE) == pytest.approx(agg["MASE"], **close)
    assert ours(M.MAPE) == pytest.approx(agg["MAPE"], **close)
    assert ours(M.SMAPE) == pytest.approx(agg["sMAPE"], **close)
    assert ours(M.ND) == pytest.approx(agg["ND"], **close)
    assert ours(M.RMSE) == pytest.approx(agg["RMSE"], **close)
    assert ours(M.MSIS) == pytest.approx(agg["MSIS"], **close)
    assert ours(M.MeanWQL) == pytest.approx(agg["mean_wQuantileLoss"], **close)
    observed = float(batch["future_observed"].sum())
    assert ours(M.MAE) == pytest.approx(agg["abs_error"] / observed, **close)
    wql, coverage = ours(M.WQL), ours(M.Coverage)
    for q in M.LEVELS:
        assert wql[str(q)] == pytest.approx(agg[f"wQuantileLoss[{q}]"], **close)
        assert coverage[str(q)] == pytest.approx(agg[f"Coverage[{q}]"], **close)
    assert agg["num_masked_target_values"] > 0  # the comparison covered missing targets


def test_constant_history_is_left_out_of_mase_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    h = 3
    future = torch.tensor([[5.0, 5.0, 5.0], [2.0, 3.0, 4.0]])
    batch = {"past_target": torch.ones(2, 4), "future_target": future,
             "seasonal_error": torch.tensor([0.0, 2.0])}  # the first history is constant
    outputs = {"mean": future + 1}
    mase = M.MASE()
    mase.update(outputs, batch)
    assert mase.compute() == pytest.approx(0.5)  # only the second window: MAE 1 / scale 2
    only_constant = M.MASE()
    only_constant.update({"mean": future[:1] + 1}, {k: v[:1] for k, v in batch.items()})
    with caplog.at_level(logging.WARNING, logger="bestiary.timeseries"):
        value = only_constant.compute()
    assert math.isnan(value) and "seasonal error" in caplog.text
    assert h == future.shape[1]


def test_missing_targets_never_count() -> None:
    future = torch.tensor([[1.0, float("nan"), 3.0]])
    observed = torch.tensor([[1.0, 0.0, 1.0]])
    batch = {"past_target": torch.ones(1, 4), "future_target": future, "future_observed": observed,
             "seasonal_error": torch.tensor([1.0])}
    outputs = {"mean": torch.tensor([[2.0, 100.0, 3.0]])}
    for cls, expected in [(M.MAE, 0.5), (M.RMSE, math.sqrt(0.5)), (M.ND, 0.25), (M.MASE, 0.5)]:
        metric = cls()
        metric.update(outputs, batch)
        assert metric.compute() == pytest.approx(expected), cls.__name__


def test_point_forecasts_use_the_mean_for_every_quantile() -> None:
    batch = {"past_target": torch.ones(1, 4), "future_target": torch.tensor([[2.0, 4.0]])}
    metric = M.MeanWQL()
    metric.update({"mean": torch.tensor([[3.0, 3.0]])}, batch)
    # each level: 2 * (|q - 1| * 1 + q * 1) / 6 = 1/3 whatever q
    assert metric.compute() == pytest.approx(1 / 3)
