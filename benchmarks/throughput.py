"""The ``throughput`` measurement: training and inference samples/s of registered architectures.

In the manner of timm's ``benchmark.py``, for one architecture at one batch size, precision and
memory format, eager or compiled:

* **training** runs through the engine (:func:`bestiary.engine.trainer.train`, the loop every run
  uses) for ``warmup + iterations`` optimizer steps on a synthetic batch that stays on the device
  (a dataset this module registers at run time as ``bench:device_batch``), so the figure is the
  model's step and the trainer around it, not an input pipeline. A global optimizer step
  post-hook stamps the end of each step (on CUDA, synchronised at the window's two ends); samples/s
  is ``iterations * batch`` over the window after the warm-up steps (compilation happens there);
* **bare** (``bare = true``): the hand-written loop of :mod:`bestiary.benchmarks.baseline`, doing the same work (the model built by
  the registry after the same seed, the same optimizer and parameter groups, autocast, memory
  format, ``torch.compile``, the same batch), timed by the same clock; ``bare_ratio`` is
  training samples/s over the bare loop's;
* **inference**: forward passes under ``torch.inference_mode`` and autocast, ``warmup`` untimed,
  then ``iterations`` timed between two synchronisations.

Also recorded: parameters (millions), GMACs per sample (``torch.utils.flop_counter`` on one
sample, multiply-accumulates = FLOPs / 2) and, on CUDA, peak allocated memory. When a step runs
out of memory the batch is halved and the cell measured again (``batch_used``, ``oom_halvings``).
"""

from __future__ import annotations

import gc
import shutil
import time
from pathlib import Path
from typing import Any

from bestiary import hookimpl

from .baseline import hand_loop
from .suite import Cell
from .timing import StepClock

PLUGIN = "bench"
DATASET = f"{PLUGIN}:device_batch"
TASK = "image-classification"
LR = {"sgd": 0.01, "adamw": 1e-3}
NEVER = 10**9  # log_every: the trainer logs nothing inside the timed window


# -- the synthetic, device-resident dataset --------------------------------------------------


class DeviceBatch(tuple[Any, ...]):
    """``(images, labels)`` already on the device; the data loader's pinning passes it through."""

    def pin_memory(self, device: Any = None) -> DeviceBatch:
        return self


class SyntheticBatches:
    """``batches`` batches that are all the same tensors: indexing a whole batch returns them."""

    def __init__(self, images: Any, labels: Any, batches: int) -> None:
        self.images, self.labels, self.batches = images, labels, batches

    def __len__(self) -> int:
        return self.batches * len(self.labels)

    def __getitem__(self, index: int) -> tuple[Any, Any]:
        i = index % len(self.labels)
        return self.images[i], self.labels[i]

    def __getitems__(self, indices: list[int]) -> DeviceBatch:
        n = len(indices)
        if n == len(self.labels):
            return DeviceBatch((self.images, self.labels))
        return DeviceBatch((self.images[:n], self.labels[:n]))


def _pass_through(batch: Any) -> Any:
    return batch


def device_batch(batch_size: int, batches: int, input_size: list[int], num_classes: int, device: str = "cpu",
                 channels_last: bool = False, seed: int = 0) -> Any:
    """Data whose training split yields one random batch, made once on ``device``, ``batches`` times."""
    import torch  # the factory makes tensors

    from bestiary.engine.data import Data

    g = torch.Generator().manual_seed(seed + 12345)
    images = torch.randn(batch_size, *input_size, generator=g)
    labels = torch.randint(0, num_classes, (batch_size,), generator=g)
    images, labels = images.to(device), labels.to(device)
    if channels_last and images.dim() == 4:
        images = images.contiguous(memory_format=torch.channels_last)
    info = {"num_classes": num_classes, "in_chans": input_size[0], "input_size": list(input_size)}
    return Data(train=SyntheticBatches(images, labels, batches), info=info, collate=_pass_through)


class _Plugin:
    @hookimpl
    def register_datasets(self, register: Any) -> None:
        register("device_batch", "bestiary.benchmarks.throughput:device_batch", task=TASK,
                 description="One random batch kept on the device, for throughput benchmarks")


def ensure_plugin(host: Any) -> None:
    """Register the synthetic dataset once in ``host``."""
    if PLUGIN not in {p.name for p in host.plugins}:
        info = host.add_plugin(_Plugin(), name=PLUGIN)
        if info.status != "ok":
            raise RuntimeError(f"the benchmark's dataset plugin failed to load: {info.error}")


# -- out of memory ---------------------------------------------------------------------------


def is_oom(exc: BaseException | None) -> bool:
    """Whether ``exc`` (or an exception it was raised from) is an out-of-memory error."""
    import torch

    seen = 0
    while exc is not None and seen < 10:
        text = str(exc).lower()
        # CUDA's (also inside compiled code) and the CPU allocator's wording
        if isinstance(exc, torch.OutOfMemoryError) or "out of memory" in text or "can't allocate memory" in text:
            return True
        exc, seen = exc.__cause__ or exc.__context__, seen + 1
    return False


def _fresh(device: Any, compiled: bool) -> None:
    """Start each measurement on the same footing: no garbage, cached graphs or blocks of the last."""
    import torch

    gc.collect()
    if compiled:
        torch._dynamo.reset()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def _peak_mb(device: Any) -> float | None:
    import torch

    return torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None


def _sync(device: Any) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


# -- the measurement -------------------------------------------------------------------------


def measure(cell: Cell, workdir: Path, repeat: int) -> dict[str, Any]:
    """Measure one repeat of ``cell``, halving the batch on out-of-memory; ``{"metrics", "info"}``."""
    import torch

    s = cell.settings
    if int(s["warmup"]) < 1 or int(s["iterations"]) < 1:
        raise ValueError("throughput settings warmup and iterations must be at least 1")
    if s.get("threads"):
        torch.set_num_threads(int(s["threads"]))
    if cell.strategy != "single" or cell.world_size != 1:
        raise ValueError("throughput runs one process with the single strategy; measure strategies and world "
                         "sizes with a scaling suite")
    if cell.precision not in ("fp32", "bf16"):
        raise ValueError(f"throughput measures fp32 or bf16, not {cell.precision} (fp16's grad scaler may skip "
                         "optimizer steps, which the step clock counts)")
    from bestiary.engine.strategy import resolve_device
    from bestiary.errors import UserError

    try:
        device = resolve_device(str(s["device"]))
    except UserError as exc:  # the engine's remedy names --device; a suite names its device
        raise RuntimeError("this cell measures on CUDA and torch sees no GPU here; run it on a GPU machine, "
                           "or use a suite with device = \"auto\" or \"cpu\" (the `throughput` suite)") from exc
    requested = batch = cell.batch_size or 32
    halvings = 0
    while True:
        try:
            metrics = _measure_at(cell, batch, device, workdir, repeat)
            break
        except Exception as exc:
            if not is_oom(exc) or batch == 1:
                raise
        # outside the except block: the traceback, and the tensors its frames hold, are gone
        _fresh(device, cell.compile)
        batch, halvings = batch // 2, halvings + 1
    primary = "train_samples_per_s" if "train_samples_per_s" in metrics else "infer_samples_per_s"
    info = {"batch_requested": requested, "batch_used": batch, "oom_halvings": halvings, "device": str(device),
            "primary": primary, "mode": "max"}
    return {"metrics": metrics, "info": info}


def _model_kwargs(cell: Cell) -> tuple[Any, dict[str, Any], dict[str, Any]]:
    from bestiary import get_entry
    from bestiary.engine.run import architecture_kwargs

    entry = get_entry("architectures", cell.arch or "")
    if entry.task != TASK:
        raise ValueError(f"throughput measures {TASK} architectures on synthetic images; {entry.name!r} is for "
                         f"{entry.task}: leave it out of the suite (exclude, or task = \"{TASK}\")")
    input_size = list(cell.settings["input_size"])
    info = {"num_classes": int(cell.settings["num_classes"]), "in_chans": input_size[0], "input_size": input_size}
    task = get_entry("tasks", entry.task or TASK).build()
    return entry, architecture_kwargs(entry, task.model_kwargs(info), dict(cell.settings["model"])), info


def _measure_at(cell: Cell, batch: int, device: Any, workdir: Path, repeat: int) -> dict[str, float]:
    import torch

    from bestiary.engine.run import autocast

    s = cell.settings
    entry, kwargs, info = _model_kwargs(cell)
    metrics = static_facts(entry, kwargs, info)
    sides = ["bestiary", "bare"] if repeat % 2 == 0 else ["bare", "bestiary"]  # no side always goes first
    for side in sides:
        if side == "bestiary" and s["train"]:
            _fresh(device, cell.compile)
            result = train_engine(cell, batch, device, workdir, repeat)
            metrics.update(train_samples_per_s=result["samples_per_s"], train_step_ms=result["step_ms"])
            if result["peak_mb"] is not None:
                metrics["peak_train_mem_mb"] = result["peak_mb"]
        if side == "bare" and s["train"] and s["bare"]:
            _fresh(device, cell.compile)
            result = train_bare(cell, entry, kwargs, info, batch, device, repeat)
            metrics.update(bare_train_samples_per_s=result["samples_per_s"], bare_train_step_ms=result["step_ms"])
    if "bare_train_samples_per_s" in metrics:
        metrics["bare_ratio"] = metrics["train_samples_per_s"] / metrics["bare_train_samples_per_s"]
    if s["inference"]:
        _fresh(device, cell.compile)
        model = entry.build(**kwargs).to(device).eval()
        if cell.channels_last:
            model = model.to(memory_format=torch.channels_last)
        forward = torch.compile(model) if cell.compile else model
        data = device_batch(batch, 1, info["input_size"], info["num_classes"], str(device), cell.channels_last, repeat)
        images = data.train.images
        with torch.inference_mode(), autocast(cell.precision, device):
            for _ in range(int(s["warmup"])):
                forward(images)
            _sync(device)
            start = time.perf_counter()
            for _ in range(int(s["iterations"])):
                forward(images)
            _sync(device)
            seconds = time.perf_counter() - start
        metrics.update(infer_samples_per_s=int(s["iterations"]) * batch / seconds,
                       infer_step_ms=seconds / int(s["iterations"]) * 1e3)
        peak = _peak_mb(device)
        if peak is not None:
            metrics["peak_infer_mem_mb"] = peak
        del model, forward, data, images
    _fresh(device, cell.compile)
    return metrics


_STATIC: dict[str, dict[str, float]] = {}


def static_facts(entry: Any, kwargs: dict[str, Any], info: dict[str, Any]) -> dict[str, float]:
    """Parameters (millions) and GMACs per sample of the model as built, counted once per process."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    key = f"{entry.qualified_name}|{sorted(kwargs.items())}|{info['input_size']}"
    if key not in _STATIC:
        model = entry.build(**kwargs).eval()
        params = sum(p.numel() for p in model.parameters())
        counter = FlopCounterMode(display=False)
        with torch.no_grad(), counter:
            model(torch.randn(1, *info["input_size"]))
        _STATIC[key] = {"params_m": params / 1e6, "gmacs": counter.get_total_flops() / 2 / 1e9}
        del model
    return dict(_STATIC[key])


def train_engine(cell: Cell, batch: int, device: Any, workdir: Path, repeat: int) -> dict[str, Any]:
    """Training samples/s of the engine's loop over ``warmup + iterations`` steps."""
    from bestiary.engine.config import RunConfig
    from bestiary.engine.trainer import train
    from bestiary.host import get_host

    s = cell.settings
    warmup, iterations = int(s["warmup"]), int(s["iterations"])
    ensure_plugin(get_host())
    run_dir = workdir / f"throughput-{repeat}"
    shutil.rmtree(run_dir, ignore_errors=True)
    cfg = RunConfig(
        arch=cell.arch or "", dataset=DATASET, model=dict(s["model"]),
        data={"batch_size": batch, "batches": warmup + iterations, "input_size": list(s["input_size"]),
              "num_classes": int(s["num_classes"]), "device": str(device), "channels_last": cell.channels_last,
              "seed": repeat},
        epochs=1, batch_size=batch, optimizer=str(s["optimizer"]), lr=LR[str(s["optimizer"])], momentum=0.9,
        weight_decay=0.0, schedule="constant", precision=cell.precision, channels_last=cell.channels_last,
        compile=cell.compile, device=str(device), seed=repeat, log_every=NEVER, keep_checkpoints=1, quiet=True,
        runs_root=str(workdir), run_dir=str(run_dir),
    )
    clock = StepClock()
    try:
        clock.reset(warmup, iterations, str(device))
        summary = train(cfg)
        result = clock.result(warmup, iterations, batch)
    finally:
        clock.close()
        shutil.rmtree(run_dir, ignore_errors=True)
    if summary["status"] == "interrupted":  # Ctrl-C or SIGTERM: end the sweep, not just this cell
        raise KeyboardInterrupt("the throughput run was interrupted")
    if summary["status"] != "completed" or summary["steps"] != warmup + iterations:
        raise RuntimeError(f"the throughput run did not complete its {warmup + iterations} steps: {summary}")
    return {"samples_per_s": result["samples_per_s"], "step_ms": result["seconds"] / iterations * 1e3,
            "peak_mb": _peak_mb(device)}


def train_bare(cell: Cell, entry: Any, kwargs: dict[str, Any], info: dict[str, Any], batch: int, device: Any,
               repeat: int) -> dict[str, Any]:
    """The hand-written baseline loop doing the engine run's work, timed by the same clock."""
    import itertools

    import torch

    s = cell.settings
    warmup, iterations = int(s["warmup"]), int(s["iterations"])
    torch.manual_seed(repeat)
    model = entry.build(**kwargs)
    data = device_batch(batch, 1, info["input_size"], info["num_classes"], str(device), cell.channels_last, repeat)
    steps = itertools.repeat((data.train.images, data.train.labels), warmup + iterations)
    clock = StepClock()
    try:
        clock.reset(warmup, iterations, str(device))
        model, _ = hand_loop(model, steps, optimizer=str(s["optimizer"]), lr=LR[str(s["optimizer"])], device=device,
                             precision=cell.precision, channels_last=cell.channels_last, compile=cell.compile)
        result = clock.result(warmup, iterations, batch)
    finally:
        clock.close()
    peak = _peak_mb(device)
    del model, data, steps
    return {"samples_per_s": result["samples_per_s"], "step_ms": result["seconds"] / iterations * 1e3, "peak_mb": peak}
