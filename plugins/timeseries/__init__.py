"""Time-series plugin: DeepAR (gluonts' network), an LSTM forecaster and naive baselines, real
series that statsmodels ships, your own series files, gluonts' synthetic series, and forecasting
metrics that agree with gluonts' ``Evaluator``.

Registration reads only the static tables below: listing never imports torch, gluonts or pandas.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from bestiary import hookimpl

if TYPE_CHECKING:
    from bestiary.extend import Register

TASK = "forecasting"
_HERE = "bestiary.plugins.timeseries"

_LR = {"lr": {"type": "float", "low": 1e-4, "high": 1e-2, "log": True}}
_BATCH = {"batch_size": {"type": "categorical", "choices": [16, 32, 64]}}

#: name, factory, description, defaults, search space, metadata
ARCHITECTURES: tuple[tuple[str, str, str, dict[str, Any], dict[str, Any], dict[str, Any]], ...] = (
    ("deepar", "deepar.model:DeepAR",
     ("DeepAR (gluonts' network): autoregressive LSTM with a Student-t, normal or negative binomial head; "
      "probabilistic forecasts from sample paths"),
     {}, {**_LR, **_BATCH,
          "model.hidden_size": {"type": "categorical", "choices": [20, 40, 80]},
          "model.num_layers": {"type": "int", "low": 1, "high": 3},
          "model.dropout_rate": {"type": "float", "low": 0.0, "high": 0.3},
          "model.distribution": {"type": "categorical", "choices": ["student_t", "normal"]}},
     {"family": "deepar", "probabilistic": True,
      "conformance": {"build": {"hidden_size": 8, "num_layers": 1, "num_parallel_samples": 8}}}),
    ("lstm", "lstm.model:LSTMForecaster",
     "LSTM encoder over the scaled context with a direct multi-horizon quantile (or point) head",
     {}, {**_LR, **_BATCH,
          "model.hidden_size": {"type": "categorical", "choices": [32, 64, 128]},
          "model.num_layers": {"type": "int", "low": 1, "high": 3},
          "model.dropout": {"type": "float", "low": 0.0, "high": 0.3}},
     {"family": "lstm", "probabilistic": True, "conformance": {"build": {"hidden_size": 8, "num_layers": 1}}}),
    ("naive", "baselines:naive",
     "Naive baseline: the last observed value, with a learned quantile spread per step",
     {}, {"lr": {"type": "float", "low": 1e-3, "high": 1e-1, "log": True}},
     {"family": "baseline", "probabilistic": True}),
    ("seasonal_naive", "baselines:seasonal_naive_model",
     ("Seasonal naive baseline: the value one season earlier (season from the frequency), "
      "with a learned quantile spread per step"),
     {}, {"lr": {"type": "float", "low": 1e-3, "high": 1e-1, "log": True}},
     {"family": "baseline", "probabilistic": True}),
)

_USER = {"conformance": {"skip": "reads the user's file (data.path); tests use files they write"}}

#: name, factory, description, metadata
DATASETS: tuple[tuple[str, str, str, dict[str, Any]], ...] = (
    ("co2", "datasets:co2", ("Weekly Mauna Loa CO2 (statsmodels), 1958-2001, 2,284 weeks with missing weeks "
                              "masked; horizon 26, 4 test and 2 validation windows"),
     {"freq": "W-SAT", "prediction_length": 26, "items": 1, "source": "statsmodels"}),
    ("elnino", "datasets:elnino", ("Monthly El Nino sea surface temperature (statsmodels), 1950-2010, one "
                                   "series of 732 months; horizon 12, 3 test and 2 validation windows"),
     {"freq": "MS", "prediction_length": 12, "items": 1, "source": "statsmodels"}),
    ("sunspots", "datasets:sunspots",
     "Yearly sunspot activity (statsmodels), 1700-2008; horizon 11, 2 test windows and 1 validation window",
     {"freq": "YS", "prediction_length": 11, "items": 1, "source": "statsmodels"}),
    ("us_macro", "datasets:us_macro", ("US macro data (statsmodels macrodata), quarterly 1959-2009, 8 items "
                                       "(GDP, consumption, investment, ...); horizon 8, 2 test windows and 1 "
                                       "validation window"),
     {"freq": "QS", "prediction_length": 8, "items": 8, "source": "statsmodels"}),
    ("synthetic_series", "datasets:synthetic_series", ("Series from gluonts' artificial generators "
                                                       "(seasonal with trend, noise and missing values, or "
                                                       "constant), made locally"),
     {"freq": "h", "prediction_length": 24, "items": 8, "source": "gluonts.dataset.artificial"}),
    ("series_file", "files:series_file", ("Your series: long CSV/Parquet (item_id, timestamp, target, "
                                         "covariates) or gluonts JSON lines at data.path; frequency inferred"),
     {**_USER}),
)

#: name, class, description, higher_is_better (None: not a score)
METRICS: tuple[tuple[str, str, str, bool | None], ...] = (
    ("mae", "MAE", "Mean absolute error of the median forecast over observed points", False),
    ("rmse", "RMSE", "Root of the mean over windows of the mean squared error of the mean forecast", False),
    ("mape", "MAPE", "Mean absolute percentage error of the median (targets of 0 left out)", False),
    ("smape", "SMAPE", "Symmetric mean absolute percentage error of the median", False),
    ("mase", "MASE", "Mean absolute scaled error: MAE of the median over the history's seasonal error", False),
    ("nd", "ND", "Normalised deviation: sum of absolute errors of the median over sum of |target|", False),
    ("mean_wql", "MeanWQL", "Mean weighted quantile loss over levels 0.1-0.9 (approximates the CRPS)", False),
    ("wql", "WQL", "Weighted quantile loss at each level 0.1-0.9 (a mapping level -> value)", None),
    ("coverage", "Coverage", "Fraction of observed values at or below each quantile 0.1-0.9 (level -> value)", None),
    ("msis", "MSIS", "Mean scaled interval score of the 95% interval (quantiles 0.025-0.975)", False),
)


@hookimpl
def register_tasks(register: Register) -> None:
    register(TASK, f"{_HERE}.task:Forecasting",
             description="Future values of series from their past; probabilistic (quantile) or point forecasts")


@hookimpl
def register_architectures(register: Register) -> None:
    for name, factory, description, defaults, space, metadata in ARCHITECTURES:
        register(name, f"{_HERE}.{factory}", task=TASK, description=description, tags=("timeseries",),
                 defaults=defaults, search_space=space, metadata=metadata)


@hookimpl
def register_datasets(register: Register) -> None:
    for name, factory, description, metadata in DATASETS:
        register(name, f"{_HERE}.{factory}", task=TASK, description=description, tags=("timeseries",),
                 metadata=metadata)


@hookimpl
def register_metrics(register: Register) -> None:
    for name, cls, description, higher in METRICS:
        meta = {"higher_is_better": higher}  # None: no score, never ranked
        register(name, f"{_HERE}.metrics:{cls}", task=TASK, description=description, metadata=meta)
