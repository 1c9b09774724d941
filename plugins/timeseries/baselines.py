"""Reference forecasters: ``naive`` repeats the last observed value, ``seasonal_naive`` the value
one season earlier. Their point forecasts have nothing to learn; their quantiles are the point
plus normal quantiles times a spread: the window's own seasonal-naive error (mean absolute
difference over one season) grown with the square root of the seasons ahead, times a learned
factor per step fitted with the pinball loss. So the baselines are probabilistic, and a weighted
quantile loss compares them fairly.
"""

from __future__ import annotations

import math
from typing import Any

import torch  # builds a torch module; only runs import this module

from bestiary.extend import ConfigError

from .deepar.model import QUANTILE_LEVELS
from .layers import left_pad, mean_scale, pinball, seasonal_mae, seasonal_naive, seasons_ahead


class SeasonalNaive(torch.nn.Module):
    """Seasonal naive forecast (last observed value where the seasonal one is missing).

    :param prediction_length: forecast horizon.
    :param season_length: the season ``m`` (1: the naive forecast).
    """

    z: torch.Tensor  # a buffer (register_buffer): the standard normal quantiles of the levels

    def __init__(self, prediction_length: int, season_length: int = 1) -> None:
        super().__init__()
        if season_length < 1:
            raise ConfigError(f"season_length must be >= 1, got {season_length}")
        self.prediction_length, self.season_length = prediction_length, int(season_length)
        # the point needs one season of past, the spread a few seasonal differences
        self.past_length = self.season_length + max(self.season_length, 2 * prediction_length)
        # a normal's standard deviation is 1.25 times its mean absolute deviation
        self.log_spread = torch.nn.Parameter(torch.full((prediction_length,), math.log(1.25)))
        self.register_buffer("z", torch.distributions.Normal(0.0, 1.0).icdf(torch.tensor(QUANTILE_LEVELS)),
                             persistent=False)

    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, Any]:
        past = left_pad(batch["past_target"].float(), self.past_length)
        observed = left_pad(batch.get("past_observed", torch.ones_like(batch["past_target"])).float(), self.past_length)
        m, h = self.season_length, self.prediction_length
        point = seasonal_naive(past, observed, m, h)
        scale = mean_scale(past, observed)
        error = seasonal_mae(past, observed, m) / scale  # [B, 1], in units of the window's level
        growth = seasons_ahead(m, h, past.device).to(past.dtype).sqrt()
        spread = error * growth * self.log_spread.exp()  # [B, H]
        scaled = (point / scale).unsqueeze(1) + self.z.to(past.dtype).view(1, -1, 1) * spread.unsqueeze(1)
        out: dict[str, Any] = {"mean": point, "quantiles": scaled * scale.unsqueeze(1), "levels": list(QUANTILE_LEVELS)}
        if "future_target" in batch:
            target = batch["future_target"].float() / scale
            mask = batch.get("future_observed", torch.ones_like(target)).float()
            out["loss"] = pinball(scaled, target, mask, torch.tensor(QUANTILE_LEVELS, device=past.device))
        return out


def seasonal_naive_model(prediction_length: int, season_length: int = 1, **_: Any) -> SeasonalNaive:
    """The seasonal naive forecaster (season from the dataset's frequency unless given)."""
    return SeasonalNaive(prediction_length, season_length)


def naive(prediction_length: int, **_: Any) -> SeasonalNaive:
    """The naive forecaster: the last observed value for every step."""
    return SeasonalNaive(prediction_length, 1)
