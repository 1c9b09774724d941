"""Tensor parallel: each layer's weight matrices split across processes (Megatron style).

The plan comes from the architecture entry's ``metadata["parallel"]["tensor_plan"]``: module name
patterns (``*`` stands for one name component) mapped to ``"colwise"`` or ``"rowwise"``. The run
engine hands that metadata to the strategy as the ``parallel`` option, so this module has no
model-specific code. Every process computes on the same batch; only the weights are split, so
the processes form one data-parallel replica (the topology's ``dp_size`` is 1, ``tp_size`` the
number of processes).

With the ``dp`` option above 1 the processes form a 2-D mesh ``(dp, tp)``: ``tp = processes // dp``
consecutive ranks split the weights as above, and the ``dp`` such groups shard the (already split)
parameters with FSDP2 ``fully_shard`` and read different batches (``dp_size`` is ``dp``).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from typing import Any

import torch
import torch.distributed as dist

from bestiary.extend import Topology

from .distributed import DistributedStrategy
from .fsdp import _no_gradient_sync, find_blocks

#: ``colwise``: output features split (the next layer takes them sharded); ``rowwise``: input
#: features split, outputs summed; ``colwise_replicate``: output features split, then gathered,
#: for layers whose output the model reshapes (timm's fused ``qkv``); ``rowwise_replicate``: takes
#: a whole input and uses its own slice (after a ``colwise_replicate`` layer).
STYLES = ("colwise", "rowwise", "colwise_replicate", "rowwise_replicate")


def expand_plan(model: torch.nn.Module, plan: Mapping[str, str]) -> dict[str, str]:
    """Module names of ``model`` matched by each pattern of ``plan``, with their style.

    :raises ValueError: for an unknown style or a pattern that matches no module.
    """
    names = [n for n, _ in model.named_modules() if n]
    out: dict[str, str] = {}
    for pattern, style in plan.items():
        if style not in STYLES:
            raise ValueError(f"tensor plan {pattern!r}: style {style!r} is not one of {', '.join(STYLES)}")
        regex = re.compile("^" + ".".join("[^.]+" if p == "*" else re.escape(p) for p in pattern.split(".")) + "$")
        hits = [n for n in names if regex.match(n)]
        if not hits:
            raise ValueError(f"tensor plan pattern {pattern!r} matches no module of {type(model).__name__}")
        out.update(dict.fromkeys(hits, style))
    return out


def mesh_shape(processes: int, dp: int) -> tuple[int, int]:
    """``(dp, tp)``: ``dp`` data-parallel groups of ``tp = processes // dp`` tensor-parallel ranks.

    :raises ValueError: when ``dp`` does not divide ``processes``.
    """
    if dp < 1 or processes % dp:
        raise ValueError(f"tensor strategy option dp={dp} does not divide the {processes} processes; "
                         f"choose dp among {', '.join(str(d) for d in range(1, processes + 1) if processes % d == 0)}")
    return dp, processes // dp


class TensorParallelStrategy(DistributedStrategy):
    """Tensor parallel over all processes (``parallelize_module`` on a 1-D device mesh), or over
    each row of a 2-D ``(dp, tp)`` mesh with FSDP2 across the rows.

    :param parallel: the architecture's parallel metadata (``{"tensor_plan": {...}}``, optionally
        ``"fsdp_blocks"``); passed by the run engine from the architecture entry.
    :param dp: data-parallel degree (default 1: every process reads the same batch). With ``dp > 1``
        the ``dp`` tensor-parallel groups each read their own share of the data and shard their
        parameters with FSDP2 (blocks from ``fsdp_blocks``, else every child holding parameters).
    """

    name = "tensor"

    def __init__(self, parallel: Mapping[str, Any] | None = None, dp: int | str = 1, **options: Any) -> None:
        super().__init__(**options)
        self.plan = dict((parallel or {}).get("tensor_plan") or {})
        if not self.plan:
            raise ValueError("the tensor strategy needs the architecture's tensor plan "
                             "(metadata['parallel']['tensor_plan']); see `bestiary list architectures`")
        try:
            self.dp = int(dp)
        except (TypeError, ValueError):
            raise ValueError(f"tensor strategy option dp={dp!r} is not a whole number") from None
        if self.dp < 1:
            raise ValueError(f"tensor strategy option dp={self.dp} must be at least 1")
        blocks = (parallel or {}).get("fsdp_blocks")
        self.blocks = [blocks] if isinstance(blocks, str) else (list(blocks) if blocks else None)
        self.tp_mesh: Any = None
        self.dp_mesh: Any = None  # the data-parallel dimension, with dp > 1 only
        self._topology: Topology | None = None

    def setup(self, device: str) -> None:
        from torch.distributed.device_mesh import init_device_mesh  # only multi-process runs need it

        processes = dist.get_world_size() if dist.is_initialized() else int(os.environ.get("WORLD_SIZE", "1"))
        dp, tp = mesh_shape(processes, self.dp)  # before joining: a wrong dp fails on every rank at once
        super().setup(device)
        # the mesh is (dp, tp) row-major: tp consecutive ranks split one replica's weights
        self._topology = Topology(world_size=self.world_size, rank=self.rank, local_rank=self.local_rank,
                                  dp_size=dp, dp_rank=self.rank // tp, tp_size=tp)
        if dp == 1:
            self.mesh = init_device_mesh(self.device.type, (self.world_size,), mesh_dim_names=("tp",))
            self.tp_mesh, self.dp_mesh = self.mesh, None
            return
        self.mesh = init_device_mesh(self.device.type, (dp, tp), mesh_dim_names=("dp", "tp"))
        self.tp_mesh, self.dp_mesh = self.mesh["tp"], self.mesh["dp"]

    @property
    def topology(self) -> Topology:
        """``dp`` replicas of ``tp`` processes each (before :meth:`setup`: one process)."""
        return self._topology or super().topology

    def prepare_model(self, model: torch.nn.Module, *, channels_last: bool = False) -> torch.nn.Module:
        from torch.distributed.tensor import Replicate
        from torch.distributed.tensor.parallel import ColwiseParallel, RowwiseParallel, parallelize_module

        model = super().prepare_model(model, channels_last=channels_last)
        styles: dict[str, Callable[[], Any]] = {"colwise": ColwiseParallel, "rowwise": RowwiseParallel,
                  "colwise_replicate": lambda: ColwiseParallel(output_layouts=Replicate()),
                  "rowwise_replicate": lambda: RowwiseParallel(input_layouts=Replicate())}
        plan = {name: styles[style]() for name, style in expand_plan(model, self.plan).items()}
        model = parallelize_module(model, self.tp_mesh, plan)
        if self.dp_mesh is not None:
            from torch.distributed.fsdp import fully_shard

            for _, block in find_blocks(model, self.blocks):
                fully_shard(block, mesh=self.dp_mesh)
            fully_shard(model, mesh=self.dp_mesh)
        return model

    def no_sync(self, model: torch.nn.Module) -> Any:
        return _no_gradient_sync(model)  # a no-op unless the model is sharded over dp

    def clip_gradients(self, model: torch.nn.Module, max_norm: float) -> torch.Tensor:
        """The norm over whole tensors (torch's clip_grad_norm_ refuses a mix of sliced and plain
        gradients)."""
        grads = [p.grad for p in model.parameters() if p.grad is not None]
        # a DTensor's sum of squares is over the whole tensor (its shards summed once)
        sq = sum((_full(g.detach().float().pow(2).sum()) for g in grads), torch.zeros((), device=self.device))
        norm = sq.sqrt()
        coef = min(1.0, max_norm / (float(norm) + 1e-6))
        if coef < 1.0:
            for g in grads:
                g.mul_(coef)
        return norm

    def model_state(self, model: torch.nn.Module) -> dict[str, torch.Tensor]:
        """Whole tensors (sharded weights gathered) on the CPU; a collective: call on every rank."""
        return {k: _full(v).detach().cpu() for k, v in self.unwrap(model).state_dict().items()}

    def load_model_state(self, model: torch.nn.Module, state: dict[str, torch.Tensor]) -> None:
        from torch.distributed.tensor import DTensor, distribute_tensor

        current = self.unwrap(model).state_dict()
        local = {}
        for k, v in state.items():
            cur = current.get(k)
            local[k] = distribute_tensor(v.to(self.device), cur.device_mesh, cur.placements) \
                if isinstance(cur, DTensor) else v
        self.unwrap(model).load_state_dict(local)

    def optimizer_state(self, model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> dict[str, Any]:
        from torch.distributed.checkpoint.state_dict import StateDictOptions, get_optimizer_state_dict

        return get_optimizer_state_dict(self.unwrap(model), optimizer,
                                        options=StateDictOptions(full_state_dict=True, cpu_offload=True))

    def load_optimizer_state(self, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                             state: dict[str, Any]) -> None:
        from torch.distributed.checkpoint.state_dict import StateDictOptions, set_optimizer_state_dict

        set_optimizer_state_dict(self.unwrap(model), optimizer, state,
                                 options=StateDictOptions(full_state_dict=True))

    def save_checkpoint(self, path: Any, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                        extra: dict[str, Any]) -> None:
        from bestiary.extend import save_checkpoint

        model_state = self.model_state(model)  # collectives: every rank takes part
        optim_state = self.optimizer_state(model, optimizer)
        if self.is_main:
            save_checkpoint(path, model=model_state, optimizer=optim_state, extra=extra)
        self.barrier()


def _full(t: Any) -> Any:
    """A DTensor's whole value (an all-gather), anything else as it is."""
    from torch.distributed.tensor import DTensor

    return t.full_tensor() if isinstance(t, DTensor) else t
