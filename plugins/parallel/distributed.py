"""What every multi-process strategy shares: the process group and cross-rank reductions.

Ranks come from the environment torchrun sets (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``,
``MASTER_ADDR``, ``MASTER_PORT``); without it a strategy runs as a group of one. The backend
follows the device: NCCL on CUDA, gloo on the CPU.
"""

from __future__ import annotations

import datetime
import os
import socket
from typing import Any

import torch
import torch.distributed as dist

from bestiary.extend import Strategy, resolve_device

_OPS = {"sum": dist.ReduceOp.SUM, "max": dist.ReduceOp.MAX, "min": dist.ReduceOp.MIN}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class DistributedStrategy(Strategy):
    """A :class:`Strategy` whose processes form a ``torch.distributed`` group."""

    name = "distributed"

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self._owns_group = False

    def setup(self, device: str) -> None:
        self.rank = int(os.environ.get("RANK", 0))
        self.world_size = int(os.environ.get("WORLD_SIZE", 1))
        self.local_rank = int(os.environ.get("LOCAL_RANK", 0))
        if device == "auto":
            device = f"cuda:{self.local_rank}" if torch.cuda.is_available() else "cpu"
        elif device == "cuda":
            device = f"cuda:{self.local_rank}"
        self.device = resolve_device(device)
        if self.device.type == "cuda":
            torch.cuda.set_device(self.device)
        if not dist.is_initialized():
            backend = "nccl" if self.device.type == "cuda" else "gloo"
            if "MASTER_ADDR" in os.environ:
                init = "env://"
            else:  # a group of one, started without torchrun
                init = f"tcp://127.0.0.1:{_free_port()}"
            dist.init_process_group(backend, init_method=init, rank=self.rank, world_size=self.world_size,
                                    timeout=datetime.timedelta(minutes=30))
            self._owns_group = True

    def teardown(self) -> None:
        if self._owns_group and dist.is_initialized():
            self._leave_together()
            dist.destroy_process_group()
            self._owns_group = False

    def _leave_together(self) -> None:
        """Wait for every rank before the group goes: a gloo rank whose peers close their
        connections while it still tears its own down can abort (SIGABRT) at exit. The wait is
        bounded, so a rank that failed alone still leaves; NCCL groups are left as they are."""
        if dist.get_backend() != "gloo":
            return
        try:
            dist.monitored_barrier(timeout=datetime.timedelta(seconds=60))
        except RuntimeError:  # a peer is gone already: nothing left to wait for
            pass

    def barrier(self) -> None:
        dist.barrier()

    def reduce(self, tensor: torch.Tensor, op: str = "sum") -> torch.Tensor:
        """One all-reduce over every process. The processes of one data-parallel replica (tensor,
        pipeline) hold the same statistics, so a sum over all of them counts each replica
        ``model_parallel_size`` times: divide it out. Every rank gets the same bits, so decisions
        taken on the result (early stopping, best model) agree."""
        topology = self.topology
        out = tensor.clone()
        if op in ("sum", "mean"):
            dist.all_reduce(out, op=dist.ReduceOp.SUM)
            if op == "mean":
                return out / topology.world_size
            # no division (and no rounding) when every process is its own replica (ddp, fsdp)
            return out / topology.model_parallel_size if topology.model_parallel_size > 1 else out
        dist.all_reduce(out, op=_OPS[op])
        return out

    def gather(self, rows: torch.Tensor) -> torch.Tensor:
        """Every replica's rows once, in replica order: each process sends its replica index, and
        the first process of each replica speaks for it."""
        topology = self.topology
        parts: list[Any] = [None] * topology.world_size
        dist.all_gather_object(parts, (topology.dp_rank, rows.cpu()))
        first: dict[int, torch.Tensor] = {}
        for dp_rank, part in parts:
            first.setdefault(dp_rank, part)
        return torch.cat([first[r] for r in sorted(first)]).to(rows.device)

    def broadcast_object(self, obj: Any, src: int = 0) -> Any:
        box = [obj]
        dist.broadcast_object_list(box, src=src)
        return box[0]

    def agree(self, flag: bool) -> bool:
        t = torch.tensor([1.0 if flag else 0.0], device=self.device)
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return bool(t.item())
