"""Pipeline parallel: consecutive groups of layers on consecutive processes, fed micro-batches.

Split points come from the architecture entry's ``metadata["parallel"]["pipeline_splits"]``
(module names at which a stage begins); the run engine hands that metadata over as the
``parallel`` option. With ``p`` processes, ``p - 1`` of the points that exist in the built model
are used, spread evenly. Stages are traced with ``torch.distributed.pipelining.pipeline`` per
micro-batch shape; the traced stage modules share the model's parameters, so a batch of a new
size (the last one of an epoch) only costs one more trace.

Every process keeps the whole model (the tracer needs it) and reads the whole batch: the first
stage takes the inputs, the last the targets. The optimizer sees every parameter, but only the
stage's own ones get gradients, so only they move. Evaluation and export gather each stage's
parameters to every process and run the unsplit model there.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping
from typing import Any

import torch
import torch.distributed as dist
from bestiary.engine.data import make_loader

from .distributed import _OPS, DistributedStrategy

SCHEDULES = ("gpipe", "1f1b")


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
        self.processes = 1
        self.last_losses: list[torch.Tensor] = []

    def setup(self, device: str) -> None:
        super().setup(device)
        self.processes = self.world_size
        self.world_size = 1  # one data-parallel replica: every process reads the same batches
        if self.n_microbatches is None:
            self.n_microbatches = 2 * self.processes
        if self.schedule == "1f1b" and self.n_microbatches < self.processes:
            raise ValueError(f"schedule 1f1b needs n_microbatches >= {self.processes} (the number of stages), "
                             f"got {self.n_microbatches}")

    @property
    def stage_index(self) -> int:
        return self.rank

    @property
    def is_last(self) -> bool:
        return self.rank == self.processes - 1

    def prepare_model(self, model: torch.nn.Module, *, channels_last: bool = False) -> torch.nn.Module:
        model = super().prepare_model(model, channels_last=channels_last)
        wrapped = PipelinedModel(model, self)
        wrapped.split_at = choose_splits(model, self.splits, self.processes)
        return wrapped

    def unwrap(self, model: torch.nn.Module) -> torch.nn.Module:
        model = getattr(model, "_orig_mod", model)
        return model.module if isinstance(model, PipelinedModel) else model

    def loader(self, dataset: Any, *, batch_size: int, shuffle: bool, seed: int, epoch: int = 0,
               skip_batches: int = 0, drop_last: bool = False, num_workers: int = 0,
               collate: Any = None) -> Any:
        """The whole batch on every process: the first stage needs the inputs, the last the targets."""
        return make_loader(dataset, batch_size=batch_size, shuffle=shuffle, seed=seed, epoch=epoch,
                           skip_batches=skip_batches, drop_last=drop_last, rank=0, world_size=1,
                           num_workers=num_workers, collate=collate, pin_memory=self.device.type == "cuda")

    # -- stepping -----------------------------------------------------------------------------

    def _microbatches(self, n: int) -> tuple[int, str]:
        """Micro-batch count and schedule for a batch of ``n``: equal micro-batches (traced
        stages have fixed shapes); 1F1B falls back to GPipe when no divisor is large enough."""
        m = max(d for d in range(1, min(n, self.n_microbatches or 1) + 1) if n % d == 0)
        if self.schedule == "1f1b" and m >= self.processes:
            return m, "1f1b"
        return m, "gpipe"

    def _get_schedule(self, model: PipelinedModel, inputs: torch.Tensor, kind: str, m: int) -> Any:
        from torch.distributed.pipelining import Schedule1F1B, ScheduleGPipe, SplitPoint, pipeline

        key = (tuple(inputs.shape), inputs.dtype, kind, m)
        if key not in model.schedules:
            mb = inputs[: inputs.shape[0] // m]
            pipe = pipeline(model.module, mb_args=(mb,), split_spec={s: SplitPoint.BEGINNING for s in model.split_at})
            if pipe.num_stages != self.processes:
                raise RuntimeError(f"tracing gave {pipe.num_stages} stages for {self.processes} processes")
            stage = pipe.build_stage(self.stage_index, self.device)
            model.owned = set(pipe.get_stage_module(self.stage_index).state_dict())
            cls = Schedule1F1B if kind == "1f1b" else ScheduleGPipe
            model.schedules[key] = cls(stage, n_microbatches=m, loss_fn=self._loss_proxy)
        return model.schedules[key]

    def _loss_proxy(self, output: Any, target: Any) -> torch.Tensor:
        return self._current_loss(output, target)

    def forward_backward(self, model: torch.nn.Module, batch: Any, loss_fn: Callable[..., Any], *,
                         autocast: contextlib.AbstractContextManager[Any], scale: float,
                         scaler: Any = None) -> tuple[torch.Tensor, Any]:
        if scaler is not None:
            raise ValueError("the pipeline strategy does not support fp16 loss scaling; use --precision bf16 or fp32")
        if not (isinstance(batch, (tuple, list)) and len(batch) >= 2 and isinstance(batch[0], torch.Tensor)):
            raise ValueError("the pipeline strategy supports tasks whose batches are (inputs, targets) with one "
                             "input tensor (image-classification); this task's batch is "
                             f"{type(batch).__name__}")
        if not isinstance(model, PipelinedModel):
            raise TypeError("forward_backward needs the model returned by prepare_model (torch.compile is not "
                            "supported with the pipeline strategy)")
        inputs, targets = batch[0], batch[1]

        def stage_loss(output: Any, target: Any) -> torch.Tensor:
            # the task's loss(model, batch) with the last stage's output in place of the model
            value, _ = loss_fn(_Returns(output), (inputs, target))
            return value * scale

        self._current_loss = stage_loss
        m, kind = self._microbatches(inputs.shape[0])
        schedule = self._get_schedule(model, inputs, kind, m)
        losses: list[torch.Tensor] = []
        with autocast:
            if self.stage_index == 0:
                schedule.step(inputs, target=targets if self.is_last else None, losses=losses)
            elif self.is_last:
                schedule.step(target=targets, losses=losses)
            else:
                schedule.step()
        loss = torch.stack([v.detach().float() for v in losses]).mean() / scale if losses \
            else torch.zeros((), device=self.device)
        self.last_losses = [v.detach() / scale for v in losses]
        dist.broadcast(loss, src=self.processes - 1)  # every rank logs the same loss
        return loss, None

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

    def reduce(self, tensor: torch.Tensor, op: str = "sum") -> torch.Tensor:
        """Every process evaluated the same data, so a sum counts it once: the mean over processes."""
        out = tensor.clone()
        if op in ("sum", "mean"):
            dist.all_reduce(out, op=dist.ReduceOp.SUM)
            return out / self.processes
        dist.all_reduce(out, op=_OPS[op])
        return out

    def gather(self, rows: torch.Tensor) -> torch.Tensor:
        return rows  # every process already holds every row

    # -- state --------------------------------------------------------------------------------

    def sync(self, model: PipelinedModel) -> None:
        """Give every process the whole, current model: each stage sends its own tensors."""
        if model.owned is None:  # nothing traced, nothing trained: every copy is the initial one
            return
        own = {k: v.detach().cpu() for k, v in model.module.state_dict().items() if k in model.owned}
        parts: list[Any] = [None] * self.processes
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
        from bestiary.engine import checkpoint as ckpt

        state = self.model_state(model)  # a collective: every rank takes part
        optim = [None] * self.processes
        dist.all_gather_object(optim, optimizer.state_dict())
        if self.is_main:
            ckpt.save(path, model=state, optimizer={"stages": optim}, extra=extra)
        self.barrier()

    def load_optimizer_state(self, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                             state: dict[str, Any]) -> None:
        optimizer.load_state_dict(state["stages"][self.rank])
