"""The ``lstm`` architecture: an LSTM reads the scaled past (values, observed mask, time
features); from its last state and the future time features a head forecasts every horizon step
at once, as quantiles trained with the pinball loss or as a point trained with the absolute error.
The head learns a correction to the seasonal naive forecast, so an untrained model forecasts as
that baseline does.
"""

from __future__ import annotations

from typing import Any

import torch  # builds a torch network; only runs import this module

from bestiary.extend import ConfigError

from ..deepar.model import QUANTILE_LEVELS, time_features
from ..layers import left_pad, mean_scale, pinball, seasonal_naive


class LSTMForecaster(torch.nn.Module):
    """Encoder LSTM over the past, quantile (or point) head over the horizon.

    :param prediction_length: forecast horizon.
    :param context_length: past steps read (default: twice the horizon); at least two seasons are
        read whatever it is.
    :param num_time_features: time features per step in the batches.
    :param season_length: the season of the seasonal naive forecast the head corrects (1: naive).
    :param hidden_size: LSTM width.
    :param num_layers: LSTM layers.
    :param dropout: dropout between LSTM layers and before the head.
    :param head: ``quantile`` (probabilistic) or ``point``.
    :param freq: accepted for a uniform interface; the data carries the calendar.
    """

    level_tensor: torch.Tensor  # a buffer (register_buffer)

    def __init__(self, prediction_length: int, context_length: int | None = None, num_time_features: int = 0,
                 season_length: int = 1, hidden_size: int = 64, num_layers: int = 2, dropout: float = 0.1,
                 head: str = "quantile", freq: str | None = None) -> None:
        super().__init__()
        if head not in ("quantile", "point"):
            raise ConfigError(f"unknown head {head!r}; choose quantile or point (--set model.head=NAME)")
        self.prediction_length = h = prediction_length
        self.season_length = int(season_length)
        self.past_length = max(int(context_length or 2 * prediction_length), 2 * self.season_length)
        self.num_time_features = f = int(num_time_features)
        self.levels = QUANTILE_LEVELS if head == "quantile" else (0.5,)
        self.register_buffer("level_tensor", torch.tensor(self.levels), persistent=False)
        self.rnn = torch.nn.LSTM(2 + f, hidden_size, num_layers=num_layers, batch_first=True,
                                 dropout=dropout if num_layers > 1 else 0.0)
        self.dropout = torch.nn.Dropout(dropout)
        self.head = torch.nn.Sequential(
            torch.nn.Linear(hidden_size + h * (f + 1), hidden_size), torch.nn.ReLU(),
            torch.nn.Linear(hidden_size, h * len(self.levels)),
        )

    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, Any]:
        p, h, q = self.past_length, self.prediction_length, len(self.levels)
        past = left_pad(batch["past_target"].float(), p)
        observed = left_pad(batch.get("past_observed", torch.ones_like(batch["past_target"])).float(), p)
        b = past.shape[0]
        scale = mean_scale(past, observed)
        base = seasonal_naive(past, observed, self.season_length, h) / scale  # [B, H]
        x = [(past / scale).unsqueeze(-1), observed.unsqueeze(-1)]
        if self.num_time_features:
            feats = time_features(batch, "past", batch["past_target"].shape[1], self.num_time_features)
            x.append(left_pad(feats, p))
        _, (state, _) = self.rnn(torch.cat(x, dim=-1))
        context = [self.dropout(state[-1]), base]
        if self.num_time_features:
            context.append(time_features(batch, "future", h, self.num_time_features).reshape(b, -1))
        raw = self.head(torch.cat(context, dim=-1)).view(b, q, h)
        if q > 1:  # quantiles that never cross: the median plus ordered positive steps either side
            mid = q // 2
            steps = torch.nn.functional.softplus(raw)
            lower = raw[:, mid:mid + 1] - torch.flip(torch.cumsum(torch.flip(steps[:, :mid], [1]), 1), [1])
            upper = raw[:, mid:mid + 1] + torch.cumsum(steps[:, mid + 1:], 1)
            raw = torch.cat([lower, raw[:, mid:mid + 1], upper], dim=1)
        scaled = raw + base.unsqueeze(1)
        pred = scaled * scale.unsqueeze(1)
        out: dict[str, Any] = {"mean": pred[:, q // 2]}
        if q > 1:
            out.update(quantiles=pred, levels=list(self.levels))
        if "future_target" in batch:
            target = batch["future_target"].float() / scale
            mask = batch.get("future_observed", torch.ones_like(target)).float()
            out["loss"] = pinball(scaled, target, mask, self.level_tensor.to(raw.dtype))
        return out
