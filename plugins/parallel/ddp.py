"""Data parallel: one full model replica per process, gradients averaged by all-reduce.

``DistributedDataParallel`` buckets gradients and all-reduces each bucket as soon as backward has
filled it, so communication overlaps the rest of backward. Every rank holds the whole model and
optimizer state, so a checkpoint is one file written by rank 0.
"""

from __future__ import annotations

import contextlib
from typing import Any

import torch
from torch.nn.parallel import DistributedDataParallel

from .distributed import DistributedStrategy

#: Options passed through to ``DistributedDataParallel`` (``strategy_options`` in the run config).
OPTIONS = ("bucket_cap_mb", "find_unused_parameters", "gradient_as_bucket_view", "static_graph")


class DDPStrategy(DistributedStrategy):
    """``torch.nn.parallel.DistributedDataParallel`` over the torchrun process group.

    :param bucket_cap_mb: gradient bucket size in MiB (DDP's default, 25, when not given).
    :param find_unused_parameters: allow parameters that get no gradient in some steps.
    :param gradient_as_bucket_view: gradients are views into the buckets (saves one copy).
    :param static_graph: the set of used parameters never changes (lets DDP skip some work).
    """

    name = "ddp"

    def __init__(self, **options: Any) -> None:
        unknown = sorted(set(options) - set(OPTIONS))
        if unknown:
            raise ValueError(f"strategy 'ddp' has no option {', '.join(map(repr, unknown))}; "
                             f"valid options: {', '.join(OPTIONS)} (set with --set strategy_options.NAME=VALUE)")
        super().__init__()
        self.ddp_options = {k: v for k, v in options.items() if v is not None}

    def prepare_model(self, model: torch.nn.Module, *, channels_last: bool = False) -> torch.nn.Module:
        model = super().prepare_model(model, channels_last=channels_last)
        # device_ids only for a single CUDA device per process; None on the CPU.
        device_ids = [self.device.index] if self.device.type == "cuda" else None
        return DistributedDataParallel(model, device_ids=device_ids, **self.ddp_options)

    def unwrap(self, model: torch.nn.Module) -> torch.nn.Module:
        model = getattr(model, "_orig_mod", model)  # torch.compile wraps outside or inside
        if isinstance(model, DistributedDataParallel):
            model = model.module
        return getattr(model, "_orig_mod", model)

    def no_sync(self, model: torch.nn.Module) -> contextlib.AbstractContextManager[Any]:
        """Accumulate gradients locally; the all-reduce happens on the step's last micro-batch."""
        model = getattr(model, "_orig_mod", model)
        if isinstance(model, DistributedDataParallel):
            return model.no_sync()
        return contextlib.nullcontext()
