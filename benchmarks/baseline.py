"""The hand-written baseline: the minimal PyTorch training loop doing what a bestiary run of an
image classifier does, which the trainer's throughput is measured against.

It does the engine's work and nothing else: the model moved to the device (channels-last when
asked), the two SGD (or AdamW) parameter groups the engine builds, ``torch.compile`` when asked,
autocast as the engine resolves it, cross-entropy on float logits, ``backward``, ``step``,
``zero_grad(set_to_none=True)``. The ``throughput`` measurement and ``scripts/bench_trainer.py``
both time it with :class:`bestiary.benchmarks.timing.StepClock`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

#: Momentum of SGD, as the benchmarks' runs configure it.
MOMENTUM = 0.9


def hand_optimizer(model: Any, name: str, lr: float, momentum: float = MOMENTUM) -> Any:
    """The optimizer the engine builds for a run without weight decay: weights and the rest
    (biases, norms) in two groups; SGD with Nesterov momentum, or AdamW."""
    import torch  # only measurements build optimizers

    decay = [p for p in model.parameters() if p.ndim > 1]
    rest = [p for p in model.parameters() if p.ndim <= 1]
    groups = [{"params": decay, "weight_decay": 0.0}] + ([{"params": rest, "weight_decay": 0.0}] if rest else [])
    if name == "sgd":
        return torch.optim.SGD(groups, lr=lr, momentum=momentum, nesterov=True)
    if name == "adamw":
        return torch.optim.AdamW(groups, lr=lr)
    raise ValueError(f"the baseline loop knows optimizers sgd and adamw, not {name!r}")


def hand_loop(model: Any, batches: Iterable[tuple[Any, Any]], *, optimizer: str, lr: float, device: Any,
              precision: str = "fp32", channels_last: bool = False, compile: bool = False,
              momentum: float = MOMENTUM) -> tuple[Any, list[Any]]:
    """Train ``model`` on ``batches`` of ``(images, labels)``, one optimizer step each.

    :param model: the model as its factory built it (after the seed the engine run used).
    :param batches: on any device; moved to ``device`` as the engine's loader does.
    :param optimizer: ``sgd`` or ``adamw`` (see :func:`hand_optimizer`).
    :param lr: learning rate (constant).
    :param device: a :class:`torch.device`.
    :param precision: ``fp32`` or ``bf16`` (autocast, as :func:`bestiary.engine.run.autocast`).
    :param channels_last: channels-last model and inputs.
    :param compile: ``torch.compile`` the model for the forward pass.
    :param momentum: SGD momentum.
    :return: the trained model and each step's loss (detached, on the device).
    """
    import torch  # only measurements train
    import torch.nn.functional as F

    from bestiary.engine.run import autocast

    model = model.to(device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    opt = hand_optimizer(model, optimizer, lr, momentum)
    forward = torch.compile(model) if compile else model
    amp = autocast(precision, device)
    losses = []
    model.train()
    for images, labels in batches:
        images = images.to(device, non_blocking=True)
        labels = labels.to(device, non_blocking=True)
        if channels_last and images.dim() == 4:
            images = images.contiguous(memory_format=torch.channels_last)
        with amp:
            loss = F.cross_entropy(forward(images).float(), labels)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        losses.append(loss.detach())
    return model, losses
