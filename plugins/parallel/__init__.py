"""Scaling strategies on torch.distributed: data parallel, sharded, tensor and pipeline parallel.

Registration imports nothing heavy; each strategy lives in its own module, imported when a run
builds it. Launch several processes with ``bestiary train ... --nproc-per-node N``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from bestiary import hookimpl

if TYPE_CHECKING:
    from bestiary.extend import Register

_HERE = "bestiary.plugins.parallel"
# the kit's generic strategy check has no architecture layout to give; tests/parallel runs them
_NEEDS_LAYOUT = "needs an architecture's layout (metadata['parallel']); checked by the parallel tests"


@hookimpl
def register_strategies(register: Register) -> None:
    register("ddp", f"{_HERE}.ddp:DDPStrategy", tags=("distributed",),
             description="Data parallel: DistributedDataParallel, one model replica per process",
             metadata={"min_world_size": 1})
    register("tensor", f"{_HERE}.tensor:TensorParallelStrategy", tags=("distributed",),
             description="Tensor parallel: each layer's weights split over processes by the architecture's plan",
             metadata={"requires": "tensor", "conformance": {"skip": _NEEDS_LAYOUT}})
    register("pipeline", f"{_HERE}.pipeline:PipelineStrategy", tags=("distributed",),
             description="Pipeline parallel: stages of layers on successive processes, GPipe or 1F1B micro-batches",
             metadata={"requires": "pipeline", "conformance": {"skip": _NEEDS_LAYOUT}})
    register("fsdp", f"{_HERE}.fsdp:FSDPStrategy", tags=("distributed",),
             description="Fully sharded data parallel (FSDP2): parameters, gradients and optimizer state sharded",
             metadata={"min_world_size": 1})
