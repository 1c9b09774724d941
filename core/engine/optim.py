"""Optimizers and learning-rate schedules from a :class:`RunConfig`."""

from __future__ import annotations

import math

import torch  # builds torch optimizers; only runs import this module

from .config import RunConfig

DEFAULT_LR = {"adamw": 1e-3, "sgd": 0.1}


def param_groups(model: torch.nn.Module, weight_decay: float) -> list[dict]:
    """Decay matrices and convolutions; leave biases, norms and other 1-D parameters alone."""
    decay: list[torch.nn.Parameter] = []
    no_decay: list[torch.nn.Parameter] = []
    for p in model.parameters():
        if p.requires_grad:
            (decay if p.ndim > 1 else no_decay).append(p)
    groups = [{"params": decay, "weight_decay": weight_decay}]
    if no_decay:
        groups.append({"params": no_decay, "weight_decay": 0.0})
    return groups


def build_optimizer(model: torch.nn.Module, cfg: RunConfig) -> torch.optim.Optimizer:
    lr = cfg.lr if cfg.lr is not None else DEFAULT_LR[cfg.optimizer]
    groups = param_groups(model, cfg.weight_decay)
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=lr, momentum=cfg.momentum, nesterov=cfg.momentum > 0)
    return torch.optim.AdamW(groups, lr=lr)


def build_scheduler(optimizer: torch.optim.Optimizer, cfg: RunConfig, total_steps: int) -> torch.optim.lr_scheduler.LRScheduler:
    """A schedule stepped once per optimizer step, with linear warm-up before it."""
    total = max(1, total_steps)
    if cfg.schedule == "onecycle":
        max_lr = [g["lr"] for g in optimizer.param_groups]
        return torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=max_lr, total_steps=total)
    warmup = min(cfg.warmup_steps, total - 1) if total > 1 else 0
    decay_steps = max(1, total - warmup)

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / (warmup + 1)
        t = step - warmup
        if cfg.schedule == "cosine":
            return 0.5 * (1 + math.cos(math.pi * min(t, decay_steps) / decay_steps))
        if cfg.schedule == "step":
            return cfg.gamma ** (t // cfg.step_size)
        return 1.0

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
