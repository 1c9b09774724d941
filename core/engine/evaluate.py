"""Evaluation: loss and metrics over a split, reduced across processes."""

from __future__ import annotations

from typing import Any

import torch  # evaluates torch models; only runs import this module

from .metrics import Metric
from .strategy import Strategy
from .tasks import Task


@torch.no_grad()
def evaluate(
    model: torch.nn.Module,
    task: Task,
    loader: Any,
    metrics: dict[str, Metric],
    strategy: Strategy,
    *,
    autocast: Any,
    channels_last: bool = False,
) -> dict[str, float]:
    """``loss`` (mean over samples) and every metric over ``loader``."""
    was_training = model.training
    model.eval()
    for m in metrics.values():
        m.reset()
    loss_sum = torch.zeros(2, dtype=torch.float64)
    for batch in loader:
        batch = task.to_device(batch, strategy.device, channels_last)
        with autocast:
            loss, outputs = task.loss(model, batch)
        n = task.batch_size(batch)
        loss_sum += torch.tensor([float(loss) * n, n], dtype=torch.float64)
        for m in metrics.values():
            m.update(outputs, batch)
    model.train(was_training)
    loss_sum = strategy.reduce(loss_sum.to(strategy.device)).cpu()
    out = {"loss": float(loss_sum[0] / loss_sum[1]) if loss_sum[1] else float("nan")}
    for name, m in metrics.items():
        out[name] = m.compute(strategy.reduce(m.total.to(strategy.device)).cpu())
    return out
