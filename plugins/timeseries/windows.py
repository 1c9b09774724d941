"""Windows cut from series: training windows sampled as gluonts' instance splitter does, fixed
backtest windows for validation and test, and the :class:`~bestiary.engine.data.Data` of a
:class:`~.series.SeriesSet` split by time.

A window is a dict of tensors (the forecasting batch contract): ``past_target [P]``,
``past_observed [P]``, ``past_time_feat [P, F]``, ``future_target [H]``, ``future_observed [H]``,
``future_time_feat [H, F]``, ``seasonal_error []`` (the MASE scale of the whole history before
the window) and ``item []`` (the item's index). Steps before a series starts are padded with 0 and
marked unobserved, like gluonts' ``InstanceSplitter``; missing values (NaN) are 0 and unobserved.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch  # windows are torch datasets; only runs import this module

from bestiary.extend import ConfigError, Data, DataError

from .series import Item, SeriesSet, seasonal_error, seasonality

#: gluonts' default number of batches per epoch; an epoch here draws this many batches of windows
NUM_BATCHES_PER_EPOCH = 50


class _Prepared:
    """Per item: the target with NaN as 0, its observed mask and the time features, extended
    ``prediction_length`` steps past the end (for the future features of the last window)."""

    def __init__(self, series: SeriesSet) -> None:
        self.series = series
        h = series.prediction_length
        self.target, self.observed, self.features = [], [], []
        for item in series.items:
            finite = np.isfinite(item.target)
            self.target.append(np.where(finite, item.target, 0.0).astype(np.float32))
            self.observed.append(finite.astype(np.float32))
            self.features.append(series.time_features(item, len(item.target) + h).T.copy())

    def window(self, i: int, t: int, past_length: int) -> dict[str, torch.Tensor]:
        """The window of item ``i`` whose forecast starts at step ``t``."""
        h = self.series.prediction_length
        target, observed, feats = self.target[i], self.observed[i], self.features[i]
        lo = t - past_length
        pad = max(0, -lo)
        past = np.zeros(past_length, np.float32)
        past_obs = np.zeros(past_length, np.float32)
        past_feat = np.zeros((past_length, feats.shape[1]), np.float32)
        past[pad:] = target[max(lo, 0):t]
        past_obs[pad:] = observed[max(lo, 0):t]
        past_feat[pad:] = feats[max(lo, 0):t]
        future = np.zeros(h, np.float32)
        future_obs = np.zeros(h, np.float32)
        n = max(0, min(h, len(target) - t))
        future[:n] = target[t:t + n]
        future_obs[:n] = observed[t:t + n]
        return {
            "past_target": torch.from_numpy(past),
            "past_observed": torch.from_numpy(past_obs),
            "past_time_feat": torch.from_numpy(past_feat),
            "future_target": torch.from_numpy(future),
            "future_observed": torch.from_numpy(future_obs),
            "future_time_feat": torch.from_numpy(np.ascontiguousarray(feats[t:t + h])),
            "item": torch.tensor(i),
        }


class TrainWindows(torch.utils.data.IterableDataset):
    """``windows`` training windows per epoch, drawn afresh each epoch from ``(seed, epoch)``.

    As gluonts' ``ExpectedNumInstanceSampler(num_instances=1, min_future=H)``: every split point
    ``t`` in ``[0, T - H]`` of every item is equally likely (so a longer item gives more windows),
    and the past may reach before the start (padded, unobserved).

    :param prepared: the items.
    :param past_length: steps of past per window.
    :param windows: windows per epoch (batches per epoch times the batch size).
    :param seed: the draw's seed.
    """

    def __init__(self, prepared: _Prepared, past_length: int, windows: int, seed: int = 0) -> None:
        self.prepared, self.past_length, self.windows, self.seed = prepared, past_length, windows, seed
        h = prepared.series.prediction_length
        self.points = np.array([max(0, len(t) - h + 1) for t in prepared.target], dtype=np.int64)
        if self.points.sum() == 0:
            raise DataError(
                f"no training window: every series is shorter than data.prediction_length={h} once the "
                "backtest windows are held out; lower data.prediction_length, data.test_windows or data.val_windows"
            )
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.windows

    def split_points(self) -> tuple[np.ndarray, np.ndarray]:
        """The items and split points of this epoch."""
        rng = np.random.default_rng([self.seed, self.epoch])
        flat = rng.integers(0, int(self.points.sum()), size=self.windows)
        edges = np.cumsum(self.points)
        items = np.searchsorted(edges, flat, side="right")
        starts = flat - np.concatenate([[0], edges[:-1]])[items]
        return items, starts

    def __iter__(self) -> Any:
        items, starts = self.split_points()
        for i, t in zip(items.tolist(), starts.tolist()):
            yield self.prepared.window(i, t, self.past_length)

    def for_model(self, model: Any, *, batch_size: int | None = None, seed: int | None = None) -> TrainWindows:
        """The same draw with the model's past length (and a batch size's windows per epoch)."""
        windows = NUM_BATCHES_PER_EPOCH * batch_size if batch_size else self.windows
        return TrainWindows(self.prepared, _past_length(model, self.past_length), windows,
                            self.seed if seed is None else seed)


class EvalWindows(torch.utils.data.Dataset):
    """Backtest windows: item ``i`` forecast from step ``t``, for each ``(i, t)`` of ``points``,
    with the seasonal error of the history before ``t``."""

    def __init__(self, prepared: _Prepared, points: list[tuple[int, int]], past_length: int) -> None:
        self.prepared, self.points, self.past_length = prepared, points, past_length
        m = seasonality(prepared.series.freq)
        self.scales = [seasonal_error(prepared.series.items[i].target[:t], m) for i, t in points]

    def __len__(self) -> int:
        return len(self.points)

    def __getitem__(self, k: int) -> dict[str, torch.Tensor]:
        i, t = self.points[k]
        window = self.prepared.window(i, t, self.past_length)
        window["seasonal_error"] = torch.tensor(self.scales[k], dtype=torch.float32)
        return window

    def history(self, k: int) -> tuple[Item, int]:
        """The item of window ``k`` and its forecast start (for plots and predictions)."""
        i, t = self.points[k]
        return self.prepared.series.items[i], t

    def for_model(self, model: Any, **_: Any) -> EvalWindows:
        clone = EvalWindows.__new__(EvalWindows)
        clone.prepared, clone.points, clone.scales = self.prepared, self.points, self.scales
        clone.past_length = _past_length(model, self.past_length)
        return clone


def _past_length(model: Any, default: int) -> int:
    """The past a model reads (its ``past_length``, e.g. DeepAR's context plus largest lag)."""
    value = getattr(model, "past_length", None)
    return int(value) if isinstance(value, int) and value > 0 else default


def backtest_data(series: SeriesSet, *, test_windows: int = 1, val_windows: int = 1, seed: int = 0,
                  windows_per_epoch: int = NUM_BATCHES_PER_EPOCH * 32, **extra_info: Any) -> Data:
    """Split ``series`` by time: the last ``test_windows`` horizons of every item are the test
    windows, the ``val_windows`` horizons before them the validation windows, and training windows
    come from what precedes the validation windows. Items too short for a window are left out of
    that split.
    """
    h = series.prediction_length
    if test_windows < 1 or val_windows < 0:
        raise ConfigError(f"data.test_windows must be >= 1 and data.val_windows >= 0, got {test_windows} and {val_windows}")
    held = (test_windows + val_windows) * h
    test = [(i, len(it.target) - k * h) for i, it in enumerate(series.items) for k in range(test_windows, 0, -1)
            if len(it.target) - k * h > 0]
    val = [(i, len(it.target) - (test_windows + k) * h) for i, it in enumerate(series.items)
           for k in range(val_windows, 0, -1) if len(it.target) - (test_windows + k) * h > 0]
    train_series = SeriesSet([it.head(max(0, len(it.target) - held)) for it in series.items], series.freq, h,
                             series.context_length, series.covariate_names, series.season_length)
    full, past = _Prepared(series), int(series.context_length or 2 * h)
    train = TrainWindows(_Prepared(train_series), past, windows_per_epoch, seed)
    return Data(
        train=train,
        validation=EvalWindows(full, val, past) if val else None,
        test=EvalWindows(full, test, past),
        info=series.info(test_windows=test_windows, val_windows=val_windows, **extra_info),
    )
