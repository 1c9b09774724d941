"""Tensor pieces the forecasters share: window scaling, the pinball loss, the seasonal naive
forecast and left padding."""

from __future__ import annotations

import torch  # tensor code; only model builders import this module


def left_pad(x: torch.Tensor, length: int) -> torch.Tensor:
    """``x`` ``[B, T, ...]`` padded with zeros (or cut) on the left to ``length`` steps."""
    t = x.shape[1]
    if t >= length:
        return x[:, t - length:]
    pad = x.new_zeros((x.shape[0], length - t, *x.shape[2:]))
    return torch.cat([pad, x], dim=1)


def mean_scale(past: torch.Tensor, observed: torch.Tensor) -> torch.Tensor:
    """Mean absolute observed value per window ``[B, 1]`` (1 for a window with none), as DeepAR's
    mean scaler, so one network serves series of any magnitude."""
    total = (past.abs() * observed).sum(-1, keepdim=True)
    count = observed.sum(-1, keepdim=True)
    scale = total / count.clamp_min(1)
    return torch.where(scale > 1e-10, scale, torch.ones_like(scale))


def pinball(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor, levels: torch.Tensor) -> torch.Tensor:
    """Mean quantile loss of ``pred [B, Q, H]`` at ``levels [Q]`` over the observed points of
    ``target [B, H]``."""
    diff = target.unsqueeze(1) - pred
    loss = torch.maximum(levels.view(1, -1, 1) * diff, (levels.view(1, -1, 1) - 1) * diff)
    m = mask.unsqueeze(1)
    return (loss * m).sum() / (m.sum() * pred.shape[1]).clamp_min(1)


def forward_fill(past: torch.Tensor, observed: torch.Tensor) -> torch.Tensor:
    """``past [B, T]`` with each missing value replaced by the last observed one before it (the
    first observed one for a leading gap, 0 for a window with none)."""
    index = torch.arange(observed.shape[1], device=past.device).expand_as(observed)
    seen = observed > 0
    last = torch.where(seen, index, torch.full_like(index, -1)).cummax(1).values
    first = torch.where(seen.any(1), seen.float().argmax(1), torch.zeros_like(seen[:, 0], dtype=torch.long))
    last = torch.where(last < 0, first.unsqueeze(1), last)
    filled = torch.gather(past, 1, last)
    return torch.where(seen.any(1, keepdim=True), filled, torch.zeros_like(filled))


def seasonal_naive(past: torch.Tensor, observed: torch.Tensor, season: int, horizon: int) -> torch.Tensor:
    """``[B, H]``: step ``k`` repeats the value ``m * ceil((k + 1) / m)`` steps back (``m`` =
    ``season``; 1 gives the last value), over the forward-filled past."""
    filled = forward_fill(past, observed)
    steps = torch.arange(horizon, device=past.device)
    lags = season * torch.div(steps, season, rounding_mode="floor") + season - steps
    return filled[:, (past.shape[1] - lags).clamp_min(0)]


def seasons_ahead(season: int, horizon: int, device: torch.device | None = None) -> torch.Tensor:
    """``[H]``: how many seasons back the seasonal naive forecast of each step reaches."""
    steps = torch.arange(horizon, device=device)
    return torch.div(steps, season, rounding_mode="floor") + 1


def seasonal_mae(past: torch.Tensor, observed: torch.Tensor, season: int) -> torch.Tensor:
    """Mean absolute difference ``|y[t] - y[t - m]|`` over observed pairs of each window ``[B, 1]``."""
    if past.shape[1] <= season:
        return past.new_zeros((past.shape[0], 1))
    both = observed[:, season:] * observed[:, :-season]
    diff = (past[:, season:] - past[:, :-season]).abs() * both
    return diff.sum(1, keepdim=True) / both.sum(1, keepdim=True).clamp_min(1)
