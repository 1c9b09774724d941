"""Pipeline parallel: consecutive groups of layers on consecutive processes, fed micro-batches.

Split points come from the architecture entry's ``metadata["parallel"]["pipeline_splits"]``
(module names at which a stage begins); the run engine hands that metadata over as the
``parallel`` option. With ``p`` processes, ``p - 1`` of the points that exist in the built model
are used, spread evenly. Stages are traced with ``torch.distributed.pipelining.pipeline`` per
micro-batch shape; the traced stage modules share the model's parameters, so a batch of a new
size (the last one of an epoch) only costs one more trace.

Any task's batches work: the task cuts the batch into micro-batches (``Task.split_batch``), the
arguments it passes the model (a tensor, a dict of tensors, ...) are flattened into tensors for
the tracer, and the last stage's flat outputs are put back into the model's output structure
before the task computes each micro-batch's loss from it.

Every process keeps the whole model (the tracer needs it) and reads the whole batch: the first
stage takes the inputs, the last the targets. The processes form one data-parallel replica (the
topology's ``pp_size`` is the number of processes, ``dp_size`` 1). The optimizer sees every
parameter, but only the stage's own ones get gradients, so only they move. Evaluation and export
gather each stage's parameters to every process and run the unsplit model there.
"""

from __future__ import annotations

import contextlib
import weakref
from collections.abc import Callable, Mapping
from typing import Any

import torch
import torch.distributed as dist
from torch.utils._pytree import TreeSpec, tree_flatten, tree_unflatten

from bestiary.extend import Topology, split_samples

from .distributed import DistributedStrategy

SCHEDULES = ("gpipe", "1f1b")
#: the output structure of each traced :class:`_Flat`, recorded while the tracer runs its forward
_OUT_SPECS: weakref.WeakKeyDictionary[torch.nn.Module, TreeSpec] = weakref.WeakKeyDictionary()


def _first_dim(leaves: list[Any]) -> int:
    """Samples in a batch: the first dimension of the first tensor the model receives."""
    for t in leaves:
        if isinstance(t, torch.Tensor) and t.dim() > 0:
            return int(t.shape[0])
    raise ValueError("the task gives the model no tensor with a sample dimension; the pipeline strategy cannot "
                     "cut such a batch into micro-batches")


def choose_splits(model: torch.nn.Module, splits: list[str], stages: int) -> list[str]:
    """``stages - 1`` of ``splits`` that name modules of ``model``, spread evenly."""
    names = {n for n, _ in model.named_modules()}
    present = [s for s in splits if s in names]
    if stages - 1 > len(present):
        raise ValueError(f"{stages} pipeline stages need {stages - 1} split points; {type(model).__name__} has "
                         f"{len(present)} of the declared {splits}; run with at most {len(present) + 1} processes")
    if stages == 1:
        return []
    return [present[i * (len(present) + 1) // stages - 1] for i in range(1, stages)]


class _Returns(torch.nn.Module):
    """Stands in for the model in the task's ``loss(model, batch)``: returns the last stage's output."""

    def __init__(self, output: Any) -> None:
        super().__init__()
        self.output = output

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        return self.output


class _Captured(Exception):
    """Raised by :class:`_Captures` once it holds the model's arguments: the loss is not needed."""


class _Captures(torch.nn.Module):
    """Stands in for the model in the task's ``loss(model, batch)`` to learn what the task passes it."""

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        self.args, self.kwargs = args, kwargs
        raise _Captured


def model_arguments(loss_fn: Callable[..., Any], batch: Any) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """The positional and keyword arguments the task's loss gives the model for ``batch``."""
    probe = _Captures()
    try:
        loss_fn(probe, batch)
    except _Captured:
        return probe.args, probe.kwargs
    raise ValueError("the task's loss never called the model; the pipeline strategy needs a task whose "
                     "loss(model, batch) calls the model once")


class _Flat(torch.nn.Module):
    """The model taking the tensors of its arguments as a flat list and returning its outputs as a
    flat tuple, since stages pass tensors only; the output structure is recorded while tracing."""

    def __init__(self, module: torch.nn.Module, in_spec: TreeSpec) -> None:
        super().__init__()
        self.module = module
        self.in_spec = in_spec

    @property
    def out_spec(self) -> TreeSpec | None:
        return _OUT_SPECS.get(self)

    def forward(self, *leaves: Any) -> tuple[Any, ...]:
        args, kwargs = tree_unflatten(list(leaves), self.in_spec)
        flat, spec = tree_flatten(self.module(*args, **kwargs))
        _OUT_SPECS[self] = spec  # kept outside the module: the tracer restores the module's own attributes
        return tuple(flat)


class _Traced:
    """One traced pipeline for one micro-batch layout: the schedule, the model's output structure,
    and which of the flattened inputs the first stage takes."""

    def __init__(self, schedule: Any, flat: _Flat, used: list[int]) -> None:
        self.schedule, self.flat, self.used = schedule, flat, used

    def outputs(self, output: Any) -> Any:
        """The last stage's flat output in the model's own structure (a tensor, a dict, ...)."""
        flat = list(output) if isinstance(output, (tuple, list)) else [output]
        spec = self.flat.out_spec
        if spec is None or spec.num_leaves != len(flat):
            raise ValueError("the pipeline's last stage does not compute every output of the model (an output "
                             "that returns an input unchanged has no stage); return only computed tensors")
        return tree_unflatten(flat, spec)


class PipelinedModel(torch.nn.Module):
    """The whole model plus the bookkeeping of this process's stage.

    Calling it in training mode is refused (training goes through the schedule); in evaluation
    mode it runs the unsplit model, whose parameters are gathered from every stage on ``eval()``.
    """

    def __init__(self, model: torch.nn.Module, strategy: PipelineStrategy) -> None:
        super().__init__()
        self.module = model
        self._strategy = [strategy]  # a list: not a submodule
        self.owned: set[str] | None = None  # state-dict keys of this process's stage, once traced
        self.schedules: dict[tuple[Any, ...], Any] = {}  # one traced stage and schedule per batch shape
        self.split_at: list[str] = []

    def train(self, mode: bool = True) -> PipelinedModel:
        if not mode and self.training:
            self._strategy[0].sync(self)
        return super().train(mode)

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        if self.training:
            raise RuntimeError("a pipelined model trains through strategy.forward_backward; call .eval() to "
                               "run the whole model (for evaluation)")
        return self.module(*args, **kwargs)


class PipelineStrategy(DistributedStrategy):
    """Pipeline parallel over all processes, one stage per process.

    :param parallel: the architecture's parallel metadata (``{"pipeline_splits": [...]}``).
    :param schedule: ``"gpipe"`` (all forwards, then all backwards) or ``"1f1b"`` (one forward,
        one backward: fewer activations alive; needs ``n_microbatches >= processes``).
    :param n_microbatches: micro-batches per batch (default: twice the number of processes). A
        batch that does not divide evenly uses the largest divisor of its size below this.
    """

    name = "pipeline"

    def __init__(self, parallel: Mapping[str, Any] | None = None, schedule: str = "gpipe",
                 n_microbatches: int | None = None, **options: Any) -> None:
        super().__init__(**options)
        self.splits = list((parallel or {}).get("pipeline_splits") or [])
        if not self.splits:
            raise ValueError("the pipeline strategy needs the architecture's split points "
                             "(metadata['parallel']['pipeline_splits']); see `bestiary list architectures`")
        if schedule not in SCHEDULES:
            raise ValueError(f"schedule {schedule!r} is not one of {', '.join(SCHEDULES)}")
        if n_microbatches is not None and n_microbatches < 1:
            raise ValueError(f"n_microbatches must be at least 1, got {n_microbatches}")
        self.schedule, self.n_microbatches = schedule, n_microbatches
        self.last_losses: list[torch.Tensor] = []

    def setup(self, device: str) -> None:
        super().setup(device)
        if self.n_microbatches is None:
            self.n_microbatches = 2 * self.world_size
        if self.schedule == "1f1b" and self.n_microbatches < self.world_size:
            raise ValueError(f"schedule 1f1b needs n_microbatches >= {self.world_size} (the number of stages), "
                             f"got {self.n_microbatches}")

    @property
    def topology(self) -> Topology:
        """One data-parallel replica whose stages are the processes: every process reads the same batches."""
        return Topology(world_size=self.world_size, rank=self.rank, local_rank=self.local_rank,
                        dp_size=1, dp_rank=0, pp_size=self.world_size)

    @property
    def stage_index(self) -> int:
        return self.rank

    @property
    def is_last(self) -> bool:
        return self.rank == self.world_size - 1

    def prepare_model(self, model: torch.nn.Module, *, channels_last: bool = False) -> torch.nn.Module:
        model = super().prepare_model(model, channels_last=channels_last)
        wrapped = PipelinedModel(model, self)
        wrapped.split_at = choose_splits(model, self.splits, self.world_size)
        return wrapped

    def unwrap(self, model: torch.nn.Module) -> torch.nn.Module:
        model = getattr(model, "_orig_mod", model)
        return model.module if isinstance(model, PipelinedModel) else model

    # -- stepping -----------------------------------------------------------------------------

    def _microbatches(self, n: int) -> tuple[int, str]:
        """Micro-batch count and schedule for a batch of ``n``: equal micro-batches (traced
        stages have fixed shapes); 1F1B falls back to GPipe when no divisor is large enough."""
        m = max(d for d in range(1, min(n, self.n_microbatches or 1) + 1) if n % d == 0)
        if self.schedule == "1f1b" and m >= self.world_size:
            return m, "1f1b"
        return m, "gpipe"

    def _trace(self, model: PipelinedModel, leaves: list[torch.Tensor], in_spec: TreeSpec, kind: str,
               m: int) -> _Traced:
        """The traced stages and schedule for micro-batches shaped as ``leaves`` (built once per layout)."""
        from torch.distributed.pipelining import Schedule1F1B, ScheduleGPipe, SplitPoint, pipeline

        key = (str(in_spec), tuple((tuple(t.shape), t.dtype) for t in leaves), kind, m)
        if key not in model.schedules:
            flat = _Flat(model.module, in_spec)
            pipe = pipeline(flat, mb_args=tuple(leaves),
                            split_spec={f"module.{s}": SplitPoint.BEGINNING for s in model.split_at})
            if pipe.num_stages != self.world_size:
                raise RuntimeError(f"tracing gave {pipe.num_stages} stages for {self.world_size} processes")
            # the first stage takes only the inputs it reads, in the order its call in the graph names them
            graph = pipe.split_gm.graph
            names = [n.name for n in graph.nodes if n.op == "placeholder"]
            first = next(iter(pipe.split_gm.named_children()))[0]
            call = next(n for n in graph.nodes if n.op == "call_module" and n.target == first)
            used = [names.index(a.name) for a in call.args if getattr(a, "name", None) in names]
            stage = pipe.build_stage(self.stage_index, self.device)
            model.owned = {k.removeprefix("module.") for k in pipe.get_stage_module(self.stage_index).state_dict()}
            cls = Schedule1F1B if kind == "1f1b" else ScheduleGPipe
            model.schedules[key] = _Traced(cls(stage, n_microbatches=m, loss_fn=self._loss_proxy), flat, used)
        return model.schedules[key]

    def _loss_proxy(self, output: Any, target: Any) -> torch.Tensor:
        return self._current_loss(output, target)

    def forward_backward(self, model: torch.nn.Module, batch: Any, loss_fn: Callable[..., Any], *,
                         autocast: contextlib.AbstractContextManager[Any], scale: float,
                         scaler: Any = None, split: Callable[[Any, int], list[Any]] | None = None,
                         ) -> tuple[torch.Tensor, Any]:
        """Cut the batch with the task's ``split`` (default: :func:`~bestiary.engine.tasks.split_samples`),
        run the schedule, and return the mean of the micro-batch losses on every rank."""
        if scaler is not None:
            raise ValueError("the pipeline strategy does not support fp16 loss scaling; use --precision bf16 or fp32")
        if not isinstance(model, PipelinedModel):
            raise TypeError("forward_backward needs the model returned by prepare_model (torch.compile is not "
                            "supported with the pipeline strategy)")
        micro, leaves, spec, kind = self._inputs(batch, loss_fn, split)
        traced = self._trace(model, leaves[0], spec, kind, len(micro))

        def stage_loss(output: Any, target: Any) -> torch.Tensor:
            # the task's loss(model, micro-batch) with the last stage's output in place of the model
            value, _ = loss_fn(_Returns(traced.outputs(output)), target)
            return value * scale

        self._current_loss = stage_loss
        step: dict[str, Any] = {}
        if self.stage_index == 0:
            step["arg_mbs"] = [tuple(mb[i] for i in traced.used) for mb in leaves]
        if self.is_last:
            step.update(target_mbs=micro, losses=[])
        with autocast:
            traced.schedule.step(**step)
        losses = step.get("losses") or []
        loss = torch.stack([v.detach().float() for v in losses]).mean() / scale if losses \
            else torch.zeros((), device=self.device)
        self.last_losses = [v.detach() / scale for v in losses]
        dist.broadcast(loss, src=self.world_size - 1)  # every rank logs the same loss
        return loss, None

    def _inputs(self, batch: Any, loss_fn: Callable[..., Any], split: Callable[[Any, int], list[Any]] | None,
                ) -> tuple[list[Any], list[list[torch.Tensor]], TreeSpec, str]:
        """The micro-batches, the model's flattened arguments for each, their structure and the
        schedule for that many micro-batches."""
        m, kind = self._microbatches(_first_dim(tree_flatten(model_arguments(loss_fn, batch))[0]))
        micro = split(batch, m) if split is not None else split_samples(batch, m)
        flats = [tree_flatten(model_arguments(loss_fn, mb)) for mb in micro]
        others = sorted({type(t).__name__ for flat, _ in flats for t in flat if not isinstance(t, torch.Tensor)})
        if others:
            raise ValueError(f"the pipeline strategy passes tensors between stages, but the task gives the model "
                             f"{', '.join(others)} values too; make the model's arguments tensors")
        return micro, [flat for flat, _ in flats], flats[0][1], kind

    def clip_gradients(self, model: torch.nn.Module, max_norm: float) -> torch.Tensor:
        # each parameter lives on one stage: sum the squares over stages
        grads = [p.grad for p in model.parameters() if p.grad is not None]
        sq = torch.stack([g.detach().float().pow(2).sum() for g in grads]).sum() if grads \
            else torch.zeros((), device=self.device)
        dist.all_reduce(sq)
        norm = sq.sqrt()
        coef = (max_norm / (norm + 1e-6)).clamp(max=1.0)
        for g in grads:
            g.mul_(coef.to(g.dtype))
        return norm

    # -- state --------------------------------------------------------------------------------

    def sync(self, model: PipelinedModel) -> None:
        """Give every process the whole, current model: each stage sends its own tensors."""
        if model.owned is None:  # nothing traced, nothing trained: every copy is the initial one
            return
        own = {k: v.detach().cpu() for k, v in model.module.state_dict().items() if k in model.owned}
        parts: list[Any] = [None] * self.world_size
        dist.all_gather_object(parts, own)
        merged = {k: v for part in parts for k, v in part.items()}
        model.module.load_state_dict(merged, strict=False)

    def model_state(self, model: torch.nn.Module) -> dict[str, torch.Tensor]:
        """The whole state dict, gathered from every stage; a collective: call on every rank."""
        if isinstance(model, PipelinedModel):
            self.sync(model)
        return super().model_state(model)

    def save_checkpoint(self, path: Any, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                        extra: dict[str, Any]) -> None:
        from bestiary.extend import save_checkpoint

        state = self.model_state(model)  # a collective: every rank takes part
        optim: list[Any] = [None] * self.world_size
        dist.all_gather_object(optim, optimizer.state_dict())
        if self.is_main:
            save_checkpoint(path, model=state, optimizer={"stages": optim}, extra=extra)
        self.barrier()

    def load_optimizer_state(self, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                             state: dict[str, Any]) -> None:
        optimizer.load_state_dict(state["stages"][self.rank])
