"""Forecasting metrics against gluonts: float64 forecasts, an all-zero future, MASE seasonality."""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from bestiary.plugins.timeseries import metrics as M
from bestiary.plugins.timeseries.series import seasonality

DOCS = Path(__file__).resolve().parents[2] / "docs" / "timeseries.md"


def score(cls: type, outputs: dict, batch: dict) -> object:
    metric = cls()
    metric.update(outputs, batch)
    return metric.compute()


def test_float64_forecasts_keep_their_precision() -> None:
    y = torch.tensor([[16777217.0, 16777219.0]], dtype=torch.float64)  # not representable in float32
    batch = {"past_target": torch.ones(1, 4, dtype=torch.float64), "future_target": y,
             "seasonal_error": torch.tensor([1.0], dtype=torch.float64)}
    point = {"mean": y.clone()}
    quantiles = {"mean": y.clone(), "quantiles": y[:, None, :].repeat(1, 3, 1), "levels": [0.1, 0.5, 0.9]}
    for outputs in (point, quantiles):  # quantiles: [B, Q, H]
        assert score(M.MAE, outputs, batch) == 0.0
        assert score(M.RMSE, outputs, batch) == 0.0
        assert score(M.ND, outputs, batch) == 0.0
        assert score(M.MeanWQL, outputs, batch) == 0.0

def _gluonts_nd_wql(future: np.ndarray, samples: np.ndarray) -> dict[str, float]:
    from gluonts.evaluation import Evaluator
    from gluonts.model.forecast import SampleForecast

    rng = np.random.default_rng(0)
    history = rng.normal(10, 2, 24)
    index = pd.period_range("2000-01", periods=24 + len(future), freq="M")
    truth = pd.DataFrame(np.concatenate([history, future]), index=index)
    forecast = SampleForecast(samples, start_date=index[24])
    agg, _ = Evaluator(quantiles=M.LEVELS, num_workers=0)(iter([truth]), iter([forecast]), num_series=1)
    return agg


@pytest.mark.parametrize("forecast_is_zero", [False, True])
def test_nd_and_wql_of_an_all_zero_future_match_gluonts(forecast_is_zero: bool) -> None:
    h = 6
    future = np.zeros(h)
    rng = np.random.default_rng(3)
    samples = np.zeros((100, h)) if forecast_is_zero else rng.normal(1.0, 0.5, (100, h))
    with np.errstate(all="ignore"):
        agg = _gluonts_nd_wql(future, samples)
    levels = torch.tensor(M.LEVELS, dtype=torch.float64)
    quantiles = torch.quantile(torch.as_tensor(samples), levels, dim=0)[None]  # [1, Q, H]
    outputs = {"mean": torch.as_tensor(samples).mean(0)[None], "quantiles": quantiles, "levels": list(M.LEVELS)}
    batch = {"past_target": torch.ones(1, 24), "future_target": torch.zeros(1, h, dtype=torch.float64)}
    nd, wql = score(M.ND, outputs, batch), score(M.WQL, outputs, batch)
    same = (lambda a, b: math.isnan(a) and math.isnan(b)) if forecast_is_zero else (lambda a, b: a == b == math.inf)
    assert same(nd, agg["ND"]), (nd, agg["ND"])
    for q in M.LEVELS:
        assert same(wql[str(q)], agg[f"wQuantileLoss[{q}]"]), (q, wql[str(q)], agg[f"wQuantileLoss[{q}]"])


def test_mase_seasonality_in_code_and_docs_is_gluonts() -> None:
    from gluonts.time_feature import get_seasonality

    text = " ".join(DOCS.read_text().split())
    listed = re.search(r"gluonts' seasonality of the frequency \(([^)]*)\)", text)
    assert listed is not None
    words = {"daily": "D", "weekly": "W", "yearly": "Y", "monthly": "M", "quarterly": "Q", "hourly": "h"}
    documented: dict[str, int] = {}
    for part in re.finditer(r"(\d+) ([a-z, ]+?)(?=[;,]? \d|;|$)", listed.group(1)):
        for word in re.findall(r"[a-z]+", part.group(2)):
            if word in words:
                documented[words[word]] = int(part.group(1))
    assert set(documented) == set(words.values()), documented
    for freq, m in documented.items():
        assert seasonality(freq) == int(get_seasonality(freq)) == m, freq
