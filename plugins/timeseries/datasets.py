"""Series datasets: real series statsmodels ships, gluonts' synthetic generators. Nothing is
downloaded. Each is split by time (:func:`~.windows.backtest_data`): the last ``test_windows``
horizons are the test set, the ``val_windows`` before them the validation set."""

from __future__ import annotations

from typing import Any

import numpy as np

from bestiary.extend import ConfigError, Data

from .series import SEASON_LENGTH, Item, SeriesSet, freq_base
from .windows import backtest_data


def _statsmodels(name: str) -> Any:
    # statsmodels ships these tables in the package: they load offline
    import statsmodels.api as sm

    return getattr(sm.datasets, name).load_pandas().data


def co2(prediction_length: int = 26, context_length: int | None = None, test_windows: int = 4,
        val_windows: int = 2, seed: int = 0) -> Data:
    """Weekly atmospheric CO2 at Mauna Loa (ppm), March 1958 to December 2001: one series of 2,284
    weeks, 59 of them missing (masked). Weeks end on Saturday (``W-SAT``)."""
    frame = _statsmodels("co2")
    item = Item("co2", frame.index[0], frame["co2"].to_numpy(np.float32))
    series = SeriesSet([item], "W-SAT", prediction_length, context_length)
    return backtest_data(series, test_windows=test_windows, val_windows=val_windows, seed=seed,
                         source="statsmodels.datasets.co2")


def elnino(prediction_length: int = 12, context_length: int | None = None, test_windows: int = 3,
           val_windows: int = 2, seed: int = 0) -> Data:
    """Monthly sea surface temperature of the El Nino region (degrees C), 1950 to 2010, as one
    monthly series of 732 months (statsmodels' table has a row per year, a column per month)."""
    frame = _statsmodels("elnino")
    values = frame.drop(columns="YEAR").to_numpy(np.float32).reshape(-1)
    start = f"{int(frame['YEAR'].iloc[0])}-01-01"
    series = SeriesSet([Item("elnino", start, values)], "MS", prediction_length, context_length)
    return backtest_data(series, test_windows=test_windows, val_windows=val_windows, seed=seed,
                         source="statsmodels.datasets.elnino")


def sunspots(prediction_length: int = 11, context_length: int | None = None, test_windows: int = 2,
             val_windows: int = 1, seed: int = 0) -> Data:
    """Yearly sunspot activity, 1700 to 2008: one series of 309 years (an 11-year cycle, which
    ``season_length`` = 11 gives the seasonal naive forecast)."""
    frame = _statsmodels("sunspots")
    item = Item("sunspots", f"{int(frame['YEAR'].iloc[0])}-01-01", frame["SUNACTIVITY"].to_numpy(np.float32))
    series = SeriesSet([item], "YS", prediction_length, context_length, season_length=11)
    return backtest_data(series, test_windows=test_windows, val_windows=val_windows, seed=seed,
                         source="statsmodels.datasets.sunspots")


US_MACRO_ITEMS = ("realgdp", "realcons", "realinv", "realgovt", "realdpi", "cpi", "m1", "pop")


def us_macro(prediction_length: int = 8, context_length: int | None = None, test_windows: int = 2,
             val_windows: int = 1, seed: int = 0) -> Data:
    """US macroeconomic series, quarterly 1959 to 2009 (203 quarters), as 8 items: real GDP,
    consumption, investment, government spending, disposable income, CPI, M1 and population."""
    frame = _statsmodels("macrodata")
    start = f"{int(frame['year'].iloc[0])}-01-01"
    items = [Item(name, start, frame[name].to_numpy(np.float32)) for name in US_MACRO_ITEMS]
    series = SeriesSet(items, "QS", prediction_length, context_length)
    return backtest_data(series, test_windows=test_windows, val_windows=val_windows, seed=seed,
                         source="statsmodels.datasets.macrodata")


def synthetic_series(kind: str = "seasonal", num_series: int = 8, length: int = 240, freq: str = "h",
                     prediction_length: int = 24, context_length: int | None = None, test_windows: int = 1,
                     val_windows: int = 1, seed: int = 0) -> Data:
    """Series from gluonts' artificial generators, made locally: ``seasonal``
    (``ComplexSeasonalTimeSeries``: trend, seasonality, noise, some missing values) or
    ``constant`` (``ConstantDataset``: constant series, for edge cases)."""
    # gluonts' generators: imported only when this dataset is built
    import pandas as pd
    from gluonts.dataset.artificial import ComplexSeasonalTimeSeries, ConstantDataset

    legacy = {"h": "H", "D": "D", "W": "W", "M": "M"}  # the generators' own spellings
    base = freq_base(freq)
    if base not in legacy:
        raise ConfigError(f"synthetic series come hourly, daily, weekly or monthly: --set data.freq=h, D, W or M, not {freq!r}")
    if kind == "seasonal":
        gen = ComplexSeasonalTimeSeries(num_series=num_series, prediction_length=prediction_length,
                                        freq_str=legacy[base],
                                        length_low=length, length_high=length + 1, min_val=0.0, max_val=100.0,
                                        proportion_missing_values=0.02, is_noise=True, is_scale=True, percentage_unique_timestamps=0.0,
                                        seasonality=SEASON_LENGTH.get(freq_base(freq), 24))
    elif kind == "constant":
        gen = ConstantDataset(num_timeseries=num_series, num_steps=length, freq=freq)
    else:
        raise ConfigError(f"unknown synthetic kind {kind!r}; choose seasonal or constant (--set data.kind=NAME)")
    state = np.random.get_state()
    np.random.seed(seed)  # the generators draw from numpy's global state
    try:
        entries = list(gen.test)[:num_series]  # whole series; the split is ours
    finally:
        np.random.set_state(state)
    items = []
    for k, entry in enumerate(entries):
        start = entry["start"]
        start = start.to_timestamp() if isinstance(start, pd.Period) else pd.Timestamp(start)
        items.append(Item(str(entry.get("item_id", k)), start, np.asarray(entry["target"], np.float32)))
    series = SeriesSet(items, freq, prediction_length, context_length)
    return backtest_data(series, test_windows=test_windows, val_windows=val_windows, seed=seed,
                         source=f"gluonts.dataset.artificial ({kind})")
