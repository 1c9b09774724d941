"""The strategy interface: how a run is spread over devices and processes.

The trainer talks to a strategy only through this interface, so data-parallel, sharded,
tensor-parallel and pipeline strategies plug in without touching the trainer. :class:`Strategy`
implements everything for one process on one device; others override what differs.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch  # strategies place models on devices; only runs import this module

from ..errors import ConfigError, UserError
from . import checkpoint as ckpt
from .data import make_loader
from .topology import Topology


def resolve_device(name: str) -> torch.device:
    """``auto`` picks the first CUDA device when there is one, else the CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UserError(f"device {name!r} asked for, but torch sees no CUDA device; use --device cpu")
    return device


class Strategy:
    """One process, one device (CPU or one GPU). Subclass for anything more.

    :ivar device: where the model and batches live.
    :ivar rank: this process's rank; :ivar world_size: number of processes (the true count,
        whatever the strategy does with them; see :attr:`topology` for the data-parallel share).
    """

    name = "single"
    rank = 0
    world_size = 1
    local_rank = 0

    def __init__(self, **options: Any) -> None:
        if options:
            raise ConfigError(f"strategy {self.name!r} takes no options, got {sorted(options)}")
        self.device = torch.device("cpu")

    # -- lifecycle ----------------------------------------------------------------------------

    def setup(self, device: str) -> None:
        """Choose the device and join process groups (nothing to join for one process)."""
        self.device = resolve_device(device)

    def teardown(self) -> None:
        """Leave process groups."""

    @property
    def topology(self) -> Topology:
        """How the processes divide the work: every process a data-parallel replica of its own
        here; strategies that split a replica over processes (tensor, pipeline) override this."""
        return Topology.data_parallel(self.world_size, self.rank, self.local_rank)

    @property
    def is_main(self) -> bool:
        """Whether this process writes files, logs and reports."""
        return self.rank == 0

    def barrier(self) -> None:
        """Wait for every process."""

    def broadcast_object(self, obj: Any, src: int = 0) -> Any:
        """``obj`` as held by rank ``src``, on every rank."""
        return obj

    def agree(self, flag: bool) -> bool:
        """True on every rank when ``flag`` is true on any (stop requests, early stopping)."""
        return flag

    # -- wrapping -----------------------------------------------------------------------------

    def prepare_model(self, model: torch.nn.Module, *, channels_last: bool = False) -> torch.nn.Module:
        """Place the model before the optimizer is built (shard, replicate, split)."""
        model = model.to(self.device)
        if channels_last:
            model = model.to(memory_format=torch.channels_last)
        return model

    def unwrap(self, model: torch.nn.Module) -> torch.nn.Module:
        """The user's module inside whatever wrapper :meth:`prepare_model` added."""
        return getattr(model, "_orig_mod", model)

    def loader(self, dataset: Any, *, batch_size: int, shuffle: bool, seed: int, epoch: int = 0,
               skip_batches: int = 0, drop_last: bool = False, num_workers: int = 0,
               collate: Any = None) -> Any:
        """Batches of this process's share of ``dataset`` in an order fixed by ``(seed, epoch)``:
        the share of its data-parallel replica, so the processes of one replica read the same."""
        topology = self.topology
        return make_loader(
            dataset, batch_size=batch_size, shuffle=shuffle, seed=seed, epoch=epoch,
            skip_batches=skip_batches, drop_last=drop_last, rank=topology.dp_rank,
            world_size=topology.dp_size, num_workers=num_workers, collate=collate,
            pin_memory=self.device.type == "cuda",
        )

    # -- stepping -----------------------------------------------------------------------------

    def no_sync(self, model: torch.nn.Module) -> contextlib.AbstractContextManager[Any]:
        """Context for micro-batches that accumulate without communicating."""
        return contextlib.nullcontext()

    def forward_backward(
        self,
        model: torch.nn.Module,
        batch: Any,
        loss_fn: Callable[[torch.nn.Module, Any], tuple[torch.Tensor, Any]],
        *,
        autocast: contextlib.AbstractContextManager[Any],
        scale: float,
        scaler: Any = None,
        split: Callable[[Any, int], list[Any]] | None = None,
    ) -> tuple[torch.Tensor, Any]:
        """Forward and backward one micro-batch; return the unscaled loss and the outputs.

        :param split: the task's :meth:`~bestiary.engine.tasks.Task.split_batch`, for strategies
            that cut the batch further (pipeline micro-batches); others ignore it.
        """
        with autocast:
            loss, outputs = loss_fn(model, batch)
        scaled = loss if scale == 1.0 else loss * scale  # no extra op (or kernel) without accumulation
        (scaler.scale(scaled) if scaler is not None else scaled).backward()
        return loss.detach(), outputs

    def optimizer_step(
        self, model: torch.nn.Module, optimizer: torch.optim.Optimizer, *, scaler: Any = None,
        clip_grad_norm: float | None = None,
    ) -> torch.Tensor | None:
        """Unscale, clip, step and zero the gradients; return the gradient norm (a tensor, read
        only when logged, so no step waits for the device) when clipping."""
        norm = None
        if scaler is not None:
            scaler.unscale_(optimizer)
        if clip_grad_norm is not None:
            norm = self.clip_gradients(model, clip_grad_norm)
        if scaler is not None:
            scaler.step(optimizer)
            scaler.update()
        else:
            optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return norm

    def clip_gradients(self, model: torch.nn.Module, max_norm: float) -> torch.Tensor:
        """Scale the gradients to a total norm of at most ``max_norm``; return the norm before."""
        return torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm)

    def reduce(self, tensor: torch.Tensor, op: str = "sum") -> torch.Tensor:
        """Reduce ``tensor`` over the data-parallel replicas (``sum``, ``mean``, ``max``), each
        replica counted once; identity for one process."""
        return tensor

    def gather(self, rows: torch.Tensor) -> torch.Tensor:
        """Concatenate the ``rows`` of every data-parallel replica, in replica order (first dimension
        may differ); identity for one process."""
        return rows

    # -- state --------------------------------------------------------------------------------

    def model_state(self, model: torch.nn.Module) -> dict[str, torch.Tensor]:
        """The full model state dict, on the CPU, for checkpoints and export."""
        return {k: v.detach().cpu() for k, v in self.unwrap(model).state_dict().items()}

    def load_model_state(self, model: torch.nn.Module, state: dict[str, torch.Tensor]) -> None:
        self.unwrap(model).load_state_dict(state)

    def optimizer_state(self, model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> dict[str, Any]:
        return optimizer.state_dict()

    def load_optimizer_state(self, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                             state: dict[str, Any]) -> None:
        optimizer.load_state_dict(state)

    def save_checkpoint(self, path: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                        extra: dict[str, Any]) -> None:
        """Write a checkpoint atomically at ``path`` (a directory)."""
        if self.is_main:
            ckpt.save(path, model=self.model_state(model),
                      optimizer=self.optimizer_state(model, optimizer), extra=extra)
        self.barrier()

    def load_checkpoint(self, path: Path, model: torch.nn.Module,
                        optimizer: torch.optim.Optimizer) -> dict[str, Any]:
        """Restore model and optimizer from ``path``; return the extra state."""
        loaded = ckpt.load(path, map_location=self.device)
        self.load_model_state(model, loaded.model)
        self.load_optimizer_state(model, optimizer, loaded.optimizer)
        return loaded.extra

    def ranks(self) -> Iterator[int]:
        return iter(range(self.world_size))
