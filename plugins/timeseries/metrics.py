"""Forecasting metrics, defined as gluonts' ``Evaluator`` defines them, accumulated additively.

Every metric is computed over the observed future points of each window (``future_observed``;
missing targets never count). The point forecast of MAE, MAPE, sMAPE, MASE and ND is the median
(quantile 0.5, or the mean of a model without quantiles); RMSE uses the mean. Per-window metrics
(RMSE's MSE, MAPE, sMAPE, MASE, MSIS, coverage) are averaged over windows; sums (ND, weighted
quantile loss) are divided once at the end.

Undefined terms are left out, never averaged in as inf or NaN: a window with no observed point,
a MAPE point whose target is 0, a sMAPE point whose target and forecast are both 0, and a MASE or
MSIS window whose seasonal error is 0 or unknown (a constant history). A metric with nothing left
to average is NaN, and a warning says why. ND and the weighted quantile loss divide by the sum of
|target|: when the observed future is all 0 they are inf (NaN for a forecast that is 0 too), as
gluonts' Evaluator has them, with a warning.

Forecasts are scored in float64 whatever their dtype: float32 cannot tell 16777217 from 16777216.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch  # metrics accumulate tensors; only runs import this module

from bestiary.extend import Metric

log = logging.getLogger("bestiary.timeseries")

#: Quantile levels of the weighted quantile loss and coverage (gluonts' Evaluator defaults).
LEVELS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
#: MSIS interval: the 95 % interval between quantiles 0.025 and 0.975 (gluonts' alpha=0.05).
ALPHA = 0.05


def quantile(outputs: Mapping[str, Any], q: float) -> torch.Tensor:
    """The forecast at level ``q`` ``[B, H]``: the model's quantile at ``q``, linearly interpolated
    between its nearest levels (clamped at the outermost), or the mean for a point forecast."""
    if "quantiles" not in outputs:
        return _floating(outputs["mean"])
    qs = _floating(outputs["quantiles"])
    levels = [float(x) for x in outputs["levels"]]
    for j, level in enumerate(levels):
        if abs(level - q) < 1e-9:
            return qs[:, j]
    below = [j for j, level in enumerate(levels) if level < q]
    above = [j for j, level in enumerate(levels) if level > q]
    if not below:
        return qs[:, min(above, key=lambda j: levels[j])]
    if not above:
        return qs[:, max(below, key=lambda j: levels[j])]
    a, b = max(below, key=lambda j: levels[j]), min(above, key=lambda j: levels[j])
    w = (q - levels[a]) / (levels[b] - levels[a])
    return qs[:, a] * (1 - w) + qs[:, b] * w


def _floating(values: torch.Tensor) -> torch.Tensor:
    """``values`` as they are when floating point (float64 keeps its precision), else float64."""
    return values if values.is_floating_point() else values.double()


def _mask(batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
    y = batch["future_target"]
    mask = batch.get("future_observed", torch.ones_like(y)).double()
    return mask * torch.isfinite(y).double()


def _target(batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
    return torch.nan_to_num(batch["future_target"].double())


def _window_mean(values: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-window masked means ``[B]`` and which windows have any point (``[B]`` bool)."""
    count = mask.sum(-1)
    valid = count > 0
    return (values * mask).sum(-1) / count.clamp_min(1), valid


def _scale(batch: Mapping[str, torch.Tensor], n: int) -> torch.Tensor:
    scale = batch.get("seasonal_error")
    if scale is None:
        return torch.full((n,), math.nan, dtype=torch.float64)
    return scale.double().reshape(n)


def _ratio(num: torch.Tensor, den: torch.Tensor, name: str, why: str) -> float:
    if float(den) > 0:
        return float(num / den)
    log.warning("%s is undefined here: %s", name, why)
    return math.nan


def _over_target(num: torch.Tensor, den: torch.Tensor, name: str | None) -> float:
    """``num / den`` where ``den`` is a sum of |target|: inf for an error over an all-0 target and
    NaN for none, as numpy's division in gluonts' Evaluator gives."""
    if float(den) > 0:
        return float(num / den)
    if name:
        log.warning("%s is undefined here: the observed future values are all 0", name)
    return math.inf if float(num) > 0 else math.nan


class _Forecast(Metric):
    higher_is_better = False

    def value(self, total: torch.Tensor) -> Any:
        return _ratio(total[0], total[1], type(self).__name__.lower(), "no observed future value")


class MAE(_Forecast):
    """Mean absolute error of the median forecast over observed points."""

    def stats(self, outputs: Mapping[str, Any], batch: Any) -> torch.Tensor:
        mask = _mask(batch)
        err = (quantile(outputs, 0.5).double() - _target(batch)).abs() * mask
        return torch.stack([err.sum(), mask.sum()])


class RMSE(_Forecast):
    """Root of the mean, over windows, of each window's mean squared error of the mean forecast."""

    def stats(self, outputs: Mapping[str, Any], batch: Any) -> torch.Tensor:
        mask = _mask(batch)
        mse, valid = _window_mean((outputs["mean"].double() - _target(batch)) ** 2, mask)
        return torch.stack([mse[valid].sum(), valid.sum().double()])

    def value(self, total: torch.Tensor) -> float:
        return math.sqrt(v) if not math.isnan(v := super().value(total)) else v


class MAPE(_Forecast):
    """Mean over windows of the mean absolute percentage error (targets of 0 left out)."""

    def stats(self, outputs: Mapping[str, Any], batch: Any) -> torch.Tensor:
        y = _target(batch)
        mask = _mask(batch) * (y != 0)
        ape, valid = _window_mean((quantile(outputs, 0.5).double() - y).abs() / y.abs().clamp_min(1e-300), mask)
        return torch.stack([ape[valid].sum(), valid.sum().double()])


class SMAPE(_Forecast):
    """Mean over windows of the symmetric MAPE, ``2 |y - f| / (|y| + |f|)``."""

    def stats(self, outputs: Mapping[str, Any], batch: Any) -> torch.Tensor:
        y, f = _target(batch), quantile(outputs, 0.5).double()
        den = y.abs() + f.abs()
        mask = _mask(batch) * (den > 0)
        sape, valid = _window_mean(2 * (y - f).abs() / den.clamp_min(1e-300), mask)
        return torch.stack([sape[valid].sum(), valid.sum().double()])


class MASE(_Forecast):
    """Mean over windows of the median forecast's MAE divided by the window's seasonal error."""

    def stats(self, outputs: Mapping[str, Any], batch: Any) -> torch.Tensor:
        y = _target(batch)
        mae, valid = _window_mean((quantile(outputs, 0.5).double() - y).abs(), _mask(batch))
        scale = _scale(batch, y.shape[0])
        valid &= torch.isfinite(scale) & (scale > 0)
        return torch.stack([(mae[valid] / scale[valid]).sum(), valid.sum().double()])

    def value(self, total: torch.Tensor) -> float:
        return _ratio(total[0], total[1], "mase", "no window has an observed future value and a history "
                      "that varies (seasonal error > 0)")


class MSIS(MASE):
    """Mean scaled interval score of the 95 % interval (quantiles 0.025 and 0.975), over windows."""

    def stats(self, outputs: Mapping[str, Any], batch: Any) -> torch.Tensor:
        y = _target(batch)
        lo, hi = quantile(outputs, ALPHA / 2).double(), quantile(outputs, 1 - ALPHA / 2).double()
        score = hi - lo + 2 / ALPHA * ((lo - y) * (y < lo) + (y - hi) * (y > hi))
        mean, valid = _window_mean(score, _mask(batch))
        scale = _scale(batch, y.shape[0])
        valid &= torch.isfinite(scale) & (scale > 0)
        return torch.stack([(mean[valid] / scale[valid]).sum(), valid.sum().double()])


class ND(_Forecast):
    """Normalised deviation: the sum of absolute errors of the median over the sum of |target|."""

    def stats(self, outputs: Mapping[str, Any], batch: Any) -> torch.Tensor:
        mask, y = _mask(batch), _target(batch)
        err = (quantile(outputs, 0.5).double() - y).abs() * mask
        return torch.stack([err.sum(), (y.abs() * mask).sum()])

    def value(self, total: torch.Tensor) -> float:
        return _over_target(total[0], total[1], "nd")


def quantile_losses(outputs: Mapping[str, Any], batch: Any, levels: Sequence[float]) -> torch.Tensor:
    """``2 * sum |(f_q - y) * (1[y <= f_q] - q)|`` over observed points, per level ``[Q]``."""
    mask, y = _mask(batch), _target(batch)
    out = []
    for q in levels:
        f = quantile(outputs, q).double()
        out.append((2 * ((f - y) * ((y <= f).double() - q)).abs() * mask).sum())
    return torch.stack(out)


class WQL(_Forecast):
    """Weighted quantile loss per level: the quantile loss summed over points, over the sum of
    |target|; a mapping from level (``"0.1"``) to value."""

    size = len(LEVELS) + 1

    def stats(self, outputs: Mapping[str, Any], batch: Any) -> torch.Tensor:
        mask, y = _mask(batch), _target(batch)
        return torch.cat([quantile_losses(outputs, batch, LEVELS), (y.abs() * mask).sum().reshape(1)])

    def value(self, total: torch.Tensor) -> Any:
        if not float(total[-1]) > 0:
            log.warning("wql is undefined here: the observed future values are all 0")
        return {str(q): _over_target(total[j], total[-1], None) for j, q in enumerate(LEVELS)}


class MeanWQL(WQL):
    """Mean weighted quantile loss over the levels 0.1, ..., 0.9 (an approximation of the CRPS)."""

    def value(self, total: torch.Tensor) -> float:
        per = super().value(total)
        return float(sum(per.values()) / len(per))


class Coverage(Metric):
    """Per level: the mean, over windows, of the fraction of observed points at or below the
    forecast quantile (a calibrated forecast covers ``q``); a mapping from level to value."""

    size = len(LEVELS) + 1
    higher_is_better = False  # not a score: the target is the level itself

    def stats(self, outputs: Mapping[str, Any], batch: Any) -> torch.Tensor:
        mask, y = _mask(batch), _target(batch)
        rows = []
        valid = mask.sum(-1) > 0
        for q in LEVELS:
            hit, _ = _window_mean((y <= quantile(outputs, q).double()).double(), mask)
            rows.append(hit[valid].sum())
        return torch.cat([torch.stack(rows), valid.sum().double().reshape(1)])

    def value(self, total: torch.Tensor) -> Any:
        n = float(total[-1])
        if n <= 0:
            log.warning("coverage is undefined here: no observed future value")
        return {str(q): float(total[j] / n) if n > 0 else math.nan for j, q in enumerate(LEVELS)}
