"""Series held in memory: targets with missing values as NaN, covariates, their calendar, and the
fixed backtest split by time that every dataset of this plugin shares."""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np  # series are numpy arrays; only dataset builders import this module

from bestiary.extend import ConfigError, DataError

#: Season length of the seasonal naive forecast, by the base of a pandas frequency: the cycle a
#: forecaster would repeat (a year of weeks, a week of days, a day of hours).
SEASON_LENGTH = {"min": 60, "h": 24, "D": 7, "B": 5, "W": 52, "M": 12, "Q": 4, "Y": 1}
#: Default prediction length by frequency base, for user files that name none.
PREDICTION_LENGTH = {"min": 60, "h": 24, "D": 14, "B": 10, "W": 13, "M": 12, "Q": 8, "Y": 4}


def freq_base(freq: str) -> str:
    """The unit of a pandas frequency string: ``"W-SAT"`` -> ``"W"``, ``"ME"`` -> ``"M"``,
    ``"QS-OCT"`` -> ``"Q"``, ``"15min"`` -> ``"min"``."""
    from pandas.tseries.frequencies import to_offset  # frequency parsing is pandas'

    name = to_offset(freq).name
    head = name.split("-")[0]
    for base in ("min", "h", "D", "B", "W", "M", "Q", "Y"):
        if head.startswith(base) or head.rstrip("SE") == base:
            return base
    if head in ("T",):
        return "min"
    if head.upper() == "H":
        return "h"
    return head


def normalise_freq(freq: str) -> str:
    """A pandas frequency in its canonical spelling (``"M"`` -> ``"ME"``, ``"W"`` -> ``"W-SUN"``);
    an unknown one fails with the usual spellings."""
    from pandas.tseries.frequencies import to_offset

    try:
        return str(to_offset(freq).freqstr)
    except (ValueError, TypeError) as exc:
        raise ConfigError(
            f"data.freq: unknown frequency {freq!r}; pass a pandas frequency such as h, D, W, W-SAT, MS, ME, QS, QE, YS"
        ) from exc


def seasonality(freq: str) -> int:
    """The seasonal period of MASE and MSIS: gluonts' ``get_seasonality`` (``W`` and ``Y``: 1)."""
    from gluonts.time_feature import get_seasonality  # the Evaluator's rule, so the metrics agree

    return int(get_seasonality(freq))


def time_feature_names(freq: str) -> list[str]:
    from gluonts.time_feature import time_features_from_frequency_str  # DeepAR's calendar features

    return [f.__name__ for f in time_features_from_frequency_str(freq)] + ["age"]


@dataclass
class Item:
    """One series.

    :param item_id: its name.
    :param start: timestamp of the first value.
    :param target: values, NaN where missing, shape ``[T]``.
    :param covariates: known real-valued inputs ``[C, T]`` (``C`` may be 0).
    """

    item_id: str
    start: Any
    target: np.ndarray
    covariates: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), np.float32))

    def __post_init__(self) -> None:
        self.target = np.asarray(self.target, dtype=np.float32)
        if self.covariates.shape[1] != len(self.target):
            self.covariates = np.zeros((self.covariates.shape[0], len(self.target)), np.float32)

    def head(self, length: int) -> Item:
        return replace(self, target=self.target[:length], covariates=self.covariates[:, :length])


@dataclass
class SeriesSet:
    """Items of one frequency and the facts a forecasting run needs about them.

    :param items: the series.
    :param freq: pandas frequency string.
    :param prediction_length: forecast horizon.
    :param context_length: default context of the models (``None``: twice the horizon).
    :param covariate_names: names of the covariate rows.
    :param season_length: season of the seasonal naive baseline (default from the frequency).
    """

    items: list[Item]
    freq: str
    prediction_length: int
    context_length: int | None = None
    covariate_names: list[str] = field(default_factory=list)
    season_length: int | None = None

    def __post_init__(self) -> None:
        self.freq = normalise_freq(self.freq)
        if not self.items:
            raise DataError("no series: the data holds no item with values")
        for name in ("prediction_length", "context_length"):
            value = getattr(self, name)
            if (value is not None or name == "prediction_length") and (
                    isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise ConfigError(f"data.{name} must be a whole number of steps >= 1, got {value!r}; "
                                  f"pass --set data.{name}=N" + (", or leave it out for the default" if name == "context_length" else ""))
        if self.context_length is None:
            self.context_length = 2 * self.prediction_length
        if self.season_length is None:
            self.season_length = SEASON_LENGTH.get(freq_base(self.freq), 1)

    def timestamps(self, item: Item, length: int) -> Any:
        """``length`` timestamps from the item's start."""
        import pandas as pd

        return pd.date_range(item.start, periods=length, freq=self.freq)

    def time_features(self, item: Item, length: int) -> np.ndarray:
        """Calendar features (gluonts' for the frequency), the log age, then the covariates, over
        ``length`` steps from the start: ``[F, length]`` (covariates beyond the item's end are 0)."""
        from gluonts.time_feature import time_features_from_frequency_str

        index = self.timestamps(item, length)
        rows = [np.asarray(f(index), np.float32) for f in time_features_from_frequency_str(self.freq)]
        rows.append(np.log10(2.0 + np.arange(length, dtype=np.float32)))
        covariates = np.zeros((item.covariates.shape[0], length), np.float32)
        n = min(length, item.covariates.shape[1])
        covariates[:, :n] = np.nan_to_num(item.covariates[:, :n])
        return np.concatenate([np.stack(rows), covariates]) if rows else covariates

    @property
    def num_time_features(self) -> int:
        return len(time_feature_names(self.freq)) + len(self.covariate_names)

    def info(self, **extra: Any) -> dict[str, Any]:
        """The facts the task and models read (JSON values)."""
        return {
            "freq": self.freq,
            "prediction_length": self.prediction_length,
            "context_length": self.context_length,
            "num_time_features": self.num_time_features,
            "time_features": time_feature_names(self.freq) + list(self.covariate_names),
            "covariates": list(self.covariate_names),
            "season_length": self.season_length,
            "seasonality": seasonality(self.freq),
            "num_items": len(self.items),
            "item_ids": [i.item_id for i in self.items][:1000],
            **extra,
        }


def seasonal_error(history: np.ndarray, m: int) -> float:
    """Mean absolute difference of the history and itself ``m`` steps earlier (lag 1 when the
    history is no longer than ``m``), over pairs where both are present: gluonts' rule."""
    m = m if m < len(history) else 1
    if len(history) <= m:
        return math.nan
    diff = np.abs(history[m:] - history[:-m])
    diff = diff[np.isfinite(diff)]
    return float(diff.mean()) if diff.size else math.nan
