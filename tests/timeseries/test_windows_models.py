"""Windows are cut as gluonts cuts them and re-cut for the model that reads them; the forecasters
keep the batch contract; the registered datasets load offline."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

import bestiary
from bestiary.engine.data import make_loader
from bestiary.plugins.timeseries.layers import seasonal_naive
from bestiary.plugins.timeseries.series import Item, SeriesSet
from bestiary.plugins.timeseries.windows import NUM_BATCHES_PER_EPOCH, backtest_data


def _data(lengths: tuple[int, ...] = (40, 120), h: int = 4):  # type: ignore[no-untyped-def]
    items = [Item(f"s{k}", pd.Timestamp("2020-01-01"), np.arange(n, dtype=np.float32) + 100 * k)
             for k, n in enumerate(lengths)]
    return backtest_data(SeriesSet(items, "D", h), test_windows=2, val_windows=1)


def test_training_windows_are_drawn_per_epoch_in_proportion_to_length() -> None:
    data = _data()
    train = data.train.for_model(torch.nn.Linear(1, 1), batch_size=16, seed=3)
    assert len(train) == NUM_BATCHES_PER_EPOCH * 16
    first = [w["item"].item() for w in train]
    assert [w["item"].item() for w in train] == first  # a function of (seed, epoch) alone
    train.set_epoch(1)
    assert [w["item"].item() for w in train] != first
    # item 0 has 40 - 12 held out = 28 points, 25 forecast starts; item 1 has 105: a share of 25/130
    share = first.count(0) / len(first)
    assert abs(share - 25 / 130) < 0.05
    window = next(iter(train))
    observed = window["past_observed"]
    assert window["past_target"].shape == (8,) and window["future_target"].shape == (4,)
    assert ((window["past_target"] == 0) | (observed == 1)).all()  # padding before the start is unobserved


def test_backtest_windows_are_the_last_horizons() -> None:
    data = _data()
    test = [w["future_target"].tolist() for w in data.test]
    assert test[0] == [32.0, 33.0, 34.0, 35.0] and test[1] == [36.0, 37.0, 38.0, 39.0]
    assert data.validation[0]["future_target"].tolist() == [28.0, 29.0, 30.0, 31.0]
    assert float(data.test[0]["seasonal_error"]) == pytest.approx(1.0)  # daily: lag 1 of a ramp


def test_deepar_windows_reach_its_lags() -> None:
    data = _data()
    task = bestiary.get_entry("tasks", "forecasting").build()
    entry = bestiary.get_entry("architectures", "deepar")
    model = entry.build(prediction_length=4, freq="D", num_time_features=data.info["num_time_features"],
                        hidden_size=8, num_layers=1, num_parallel_samples=10)
    prepared = task.prepare_data(data, model, batch_size=8, seed=0)
    assert model.past_length == 4 + max(model.net.lags_seq) == prepared.info["past_length"]  # lags_seq is 0-based
    (batch,) = list(make_loader(prepared.test, batch_size=8, shuffle=False, seed=0))
    assert batch["past_target"].shape == (4, model.past_length)
    model.eval()
    with torch.no_grad():
        out = model(batch)
    assert out["quantiles"].shape == (4, 11, 4) and out["levels"][5] == 0.5
    assert torch.all(out["quantiles"].diff(dim=1) >= 0)


def test_seasonal_naive_repeats_the_last_season_over_gaps() -> None:
    past = torch.tensor([[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]])
    observed = torch.tensor([[1.0, 1.0, 1.0, 1.0, 0.0, 1.0]])  # 5 is missing: the 4 before it stands in
    assert seasonal_naive(past, observed, 3, 5).tolist() == [[4.0, 4.0, 6.0, 4.0, 4.0]]
    assert seasonal_naive(past, observed, 1, 2).tolist() == [[6.0, 6.0]]


@pytest.mark.parametrize("arch", ["lstm", "deepar"])
def test_a_few_steps_of_training_lower_the_loss(arch: str) -> None:
    task = bestiary.get_entry("tasks", "forecasting").build()
    data = bestiary.get_entry("datasets", "synthetic_series").build(num_series=4, length=120, prediction_length=12)
    entry = bestiary.get_entry("architectures", arch)
    small = {"lstm": {"hidden_size": 16}, "deepar": {"hidden_size": 16, "num_parallel_samples": 10}}.get(arch, {})
    torch.manual_seed(0)
    model = entry.build(**task.model_kwargs(data.info), **small)
    prepared = task.prepare_data(data, model, batch_size=32, seed=0)
    batches = list(make_loader(prepared.train, batch_size=32, shuffle=True, seed=0))[:20]
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(2):
        for batch in batches:
            loss, _ = task.loss(model, batch)
            loss.backward()
            optimizer.step()
            optimizer.zero_grad()
            losses.append(loss.item())
    assert np.mean(losses[-10:]) < np.mean(losses[:10])


@pytest.mark.parametrize("name", ["co2", "elnino", "sunspots", "us_macro"])
def test_shipped_series_load_offline(name: str) -> None:
    data = bestiary.get_entry("datasets", name).build()
    info = data.info
    assert info["num_items"] == {"us_macro": 8}.get(name, 1)
    assert len(data.test) == info["num_items"] * info["test_windows"]
    if name == "co2":
        total = data.test.prepared.observed[0]
        assert info["freq"] == "W-SAT" and len(total) == 2284 and int((total == 0).sum()) == 59
