"""How much does the bestiary trainer cost? Its training throughput over a hand-written loop's.

Run it with the interpreter bestiary is installed in::

    python benchmarks/scripts/bench_trainer.py [--steps N] [--warmup N] [--repeats N] [--json FILE] [--check]
    python benchmarks/scripts/bench_trainer.py --device cuda --arch resnet50 --precision bf16 \\
        --channels-last --batch-size 256 [--compile]

In one process it trains the same timm model on the same random images twice per repeat:

* **bestiary**: :func:`bestiary.engine.trainer.train` on a run config naming an architecture and
  a dataset that this script registers at run time through a plugin (``get_host().add_plugin``):
  ``sgd`` (momentum 0.9, Nesterov), lr 0.01, constant schedule, no weight decay, one epoch,
  ``log_every`` past the last step, ``quiet``, a temporary run directory, with every plugin the
  host loads (their lifecycle hooks are listed under ``run hooks``);
* **hand loop**: the minimal PyTorch loop of :mod:`bestiary.benchmarks.baseline` doing the same work: the same model built the same way
  after the same seed, the same two SGD parameter groups bestiary builds, a ``DataLoader`` over the
  same ``TensorDataset`` (same batch size, a seeded ``RandomSampler`` drawing the order bestiary's
  sampler draws, no workers, pinned memory on CUDA), ``F.cross_entropy``, ``backward``,
  ``step``, ``zero_grad(set_to_none=True)``.

Both are timed the same way: a global optimizer step post-hook
(``torch.optim.optimizer.register_optimizer_step_post_hook``) stamps ``time.perf_counter()`` after
every optimizer step (on CUDA it synchronizes first, at the two stamps used only), and samples/s is
``steps * batch_size`` over the time from the end of step ``warmup`` to the end of step
``warmup + steps``. Model building, data set-up, compilation (it happens in the warm-up steps),
the end-of-run checkpoint and export are outside that window; everything the trainer does per step
is inside it. (``on_step_end`` is no clock: the trainer calls it only every ``log_every`` steps.)

The runs alternate, the order flipping from one repeat to the next (bestiary first in odd
repeats, the hand loop first in even ones) so a drifting machine does not favour one side; each
repeat gives a ratio bestiary / hand, and the figure is their median. Both runs of a repeat start
from the same weights and see the same batches, so their mean training losses should agree: the
script prints both as a check that the two loops did the same work.

Each run also measures, from ``/proc/stat``, how many CPU cores other processes (and the
hypervisor, as steal) kept busy during its timed window on average; on a small shared machine
they make the figure as noisy as the machine, and a note says so when they took more than a tenth
of a core in any run. (What shares the host under a virtual machine, it cannot see: a quiet
``/proc/stat`` does not make a quiet machine.)

With ``--check`` the exit status is 1 when the median ratio misses the target (0.98 on the CPU,
0.97 on CUDA).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import re
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import bestiary
from bestiary import hookimpl
from bestiary.benchmarks.baseline import hand_loop
from bestiary.benchmarks.method import cpu_name, usable_cpus, version
from bestiary.benchmarks.timing import StepClock

TARGETS = {"cpu": 0.98, "cuda": 0.97}
BUSY_CORES = 0.1  # others' average CPU use during a timed window above which a note warns
LR = 0.01
MOMENTUM = 0.9
NEVER = 10**9  # log_every: no training log before the last step
DATASET = "bench_images"
TASK = "image-classification"


# -- environment ---------------------------------------------------------------------------------


def device_name(device: str) -> str:
    import torch

    cores = f"{usable_cpus()} usable of {os.cpu_count()} logical CPUs"
    if device.startswith("cuda"):
        return f"{torch.cuda.get_device_name(torch.device(device))} (host CPU: {cpu_name()}, {cores})"
    return f"{cpu_name()} ({cores})"


# -- the runtime plugin --------------------------------------------------------------------------


class _BenchPlugin:
    """Registers one timm architecture and a dataset of random images, both for this benchmark.

    The dataset factory hands out :attr:`data`, set by the benchmark before each run, so both
    loops train on the very same tensors.
    """

    def __init__(self, arch: str) -> None:
        self.arch = arch
        self.arch_entry = "bench_" + re.sub(r"[^a-z0-9_.-]", "_", arch.lower())
        self.data: Any = None

    def build_model(self, num_classes: int = 1000, in_chans: int = 3) -> Any:
        # explicit arguments: the trainer passes only what a factory accepts (no img_size here)
        import timm

        return timm.create_model(self.arch, num_classes=num_classes, in_chans=in_chans, pretrained=False)

    def build_data(self) -> Any:
        if self.data is None:
            raise RuntimeError("the benchmark sets the data before a run")
        return self.data

    @hookimpl
    def register_architectures(self, register: Any) -> None:
        register(self.arch_entry, self.build_model, task=TASK,
                 description=f"timm {self.arch}, for bench_trainer")

    @hookimpl
    def register_datasets(self, register: Any) -> None:
        register(DATASET, self.build_data, task=TASK, description="random images, for bench_trainer")


class _Observer:
    """Lifecycle hooks: the run's model and its training loss (logged once, at the last step)."""

    def __init__(self) -> None:
        self.model: Any = None
        self.loss: float | None = None

    @hookimpl
    def on_run_start(self, run: Any) -> None:
        self.model = run.model

    @hookimpl
    def on_step_end(self, run: Any, step: int, metrics: dict[str, float]) -> None:
        self.loss = metrics["loss"]


_PLUGINS: dict[str, tuple[str, _BenchPlugin]] = {}
_OBSERVER = _Observer()


def install_plugins(arch: str) -> tuple[str, _BenchPlugin]:
    """Register (once per process and architecture) the benchmark's plugin; return its name."""
    host = bestiary.get_host()
    if "bench_trainer_observer" not in {p.name for p in host.plugins}:
        _check(host.add_plugin(_OBSERVER, name="bench_trainer_observer"))
    if arch not in _PLUGINS:
        plugin = _BenchPlugin(arch)
        name = "bench_trainer_" + re.sub(r"[^a-z0-9_]", "_", arch.lower())
        _check(host.add_plugin(plugin, name=name))
        _PLUGINS[arch] = (name, plugin)
    return _PLUGINS[arch]


def _check(info: Any) -> None:
    if info.status != "ok":
        raise RuntimeError(f"the benchmark's own plugin {info.name!r} failed to load: {info.error}")


# -- the two loops -------------------------------------------------------------------------------


def make_data(args: argparse.Namespace) -> Any:
    """``Data`` holding ``(warmup + steps) * batch_size`` random images and labels, seeded."""
    import torch

    from bestiary.engine.data import Data

    n = (args.warmup + args.steps) * args.batch_size
    g = torch.Generator().manual_seed(args.seed + 12345)
    images = torch.randn(n, 3, args.image_size, args.image_size, generator=g)
    labels = torch.randint(0, args.num_classes, (n,), generator=g)
    size = [3, args.image_size, args.image_size]
    info = {"num_classes": args.num_classes, "in_chans": 3, "input_size": size}
    return Data(train=torch.utils.data.TensorDataset(images, labels), info=info)


def _fresh(args: argparse.Namespace) -> None:
    """Start each run on the same footing: no garbage, no cached graphs or blocks from the last."""
    import torch

    gc.collect()
    if args.compile:
        torch._dynamo.reset()
    if args.device.startswith("cuda"):
        torch.cuda.synchronize(args.device)
        torch.cuda.empty_cache()


def run_bestiary(args: argparse.Namespace, plugin_name: str, plugin: _BenchPlugin, clock: StepClock,
                 tmp: Path, index: int) -> dict[str, Any]:
    import torch

    from bestiary.engine.config import RunConfig
    from bestiary.engine.trainer import train

    run_dir = tmp / f"bestiary-{index}"
    cfg = RunConfig(
        arch=f"{plugin_name}:{plugin.arch_entry}", dataset=f"{plugin_name}:{DATASET}", epochs=1,
        batch_size=args.batch_size, optimizer="sgd", lr=LR, momentum=MOMENTUM, weight_decay=0.0,
        schedule="constant", precision=args.precision, channels_last=args.channels_last,
        compile=args.compile, device=args.device, seed=args.seed, num_workers=0,
        log_every=args.log_every, keep_checkpoints=1, quiet=True, runs_root=str(tmp), run_dir=str(run_dir),
    )
    _fresh(args)
    _OBSERVER.model, _OBSERVER.loss = None, None
    clock.reset(args.warmup, args.steps, args.device)
    summary = train(cfg)
    result = clock.result(args.warmup, args.steps, args.batch_size)
    if summary["status"] != "completed" or summary["steps"] != args.warmup + args.steps:
        raise RuntimeError(f"the bestiary run did not complete its steps: {summary}")
    result["mean_loss"] = _OBSERVER.loss
    result["model"] = _OBSERVER.model
    shutil.rmtree(run_dir, ignore_errors=True)
    if args.device.startswith("cuda"):
        torch.cuda.synchronize(args.device)
    return result


def run_hand(args: argparse.Namespace, plugin: _BenchPlugin, clock: StepClock) -> dict[str, Any]:
    """The hand-written baseline loop (:mod:`bestiary.benchmarks.baseline`) doing what the bestiary
    run does, over the batches bestiary's loader draws."""
    import torch

    device = torch.device(args.device)
    dataset = plugin.data.train
    _fresh(args)
    torch.manual_seed(args.seed)
    model = plugin.build_model(num_classes=args.num_classes, in_chans=3)
    order = torch.Generator().manual_seed(args.seed * 1_000_003)  # the order bestiary's epoch 0 has
    loader = torch.utils.data.DataLoader(
        dataset, batch_size=args.batch_size, sampler=torch.utils.data.RandomSampler(dataset, generator=order),
        num_workers=0, pin_memory=device.type == "cuda", generator=torch.Generator().manual_seed(args.seed),
    )
    clock.reset(args.warmup, args.steps, args.device)
    model, losses = hand_loop(model, loader, optimizer="sgd", lr=LR, momentum=MOMENTUM, device=device,
                              precision=args.precision, channels_last=args.channels_last, compile=args.compile)
    result = clock.result(args.warmup, args.steps, args.batch_size)
    result["mean_loss"] = float(torch.stack(losses).float().mean())
    result["model"] = model
    return result


def max_param_diff(a: Any, b: Any) -> float:
    import torch

    with torch.no_grad():
        return max(float((p - q).abs().max()) for p, q in zip(a.parameters(), b.parameters()))


def print_pair(i: int, pair: dict[str, Any]) -> None:
    b, h = pair["bestiary"], pair["hand"]
    print(f"repeat {i + 1} ({pair['order'][0]} first):"
          f" bestiary {b['samples_per_s']:7.1f} samples/s ({b['median_step_ms']:.1f} ms/step median)"
          f"   hand {h['samples_per_s']:7.1f} samples/s ({h['median_step_ms']:.1f} ms/step median)"
          f"   ratio {pair['ratio']:.4f}")
    print(f"    same work: mean train loss bestiary {b['mean_loss']:.6f}, hand {h['mean_loss']:.6f};"
          f" max |param difference| after training {pair['max_param_diff']:.3g}")
    if b["others_cores"] is not None and h["others_cores"] is not None:
        print(f"    other processes kept {b['others_cores']:.2f} (bestiary run) and {h['others_cores']:.2f}"
              " (hand run) CPU cores busy on average")


# -- main ----------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="bench_trainer",
        description="Training throughput of the bestiary trainer over a minimal hand-written PyTorch loop.",
    )
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (default cpu)")
    parser.add_argument("--arch", default="resnet18", help="timm model name (default resnet18)")
    # no fp16: its grad scaler skips optimizer steps, which the step clock counts
    parser.add_argument("--precision", choices=("fp32", "bf16"), default="fp32",
                        help="fp32, or bf16 autocast (default fp32)")
    parser.add_argument("--channels-last", action="store_true", help="channels-last model and inputs")
    parser.add_argument("--compile", action="store_true", help="torch.compile the model (both loops)")
    parser.add_argument("--batch-size", type=int, default=64, help="default 64")
    parser.add_argument("--image-size", type=int, default=32, help="inputs are 3 x S x S (default 32)")
    parser.add_argument("--num-classes", type=int, default=10, help="default 10")
    parser.add_argument("--steps", type=int, default=30, help="timed optimizer steps per run (default 30)")
    parser.add_argument("--warmup", type=int, default=5, help="untimed steps before them (default 5)")
    parser.add_argument("--repeats", type=int, default=5, help="pairs of runs (default 5)")
    parser.add_argument("--threads", type=int, default=usable_cpus(),
                        help=f"torch.set_num_threads (default: all usable CPUs, {usable_cpus()} here)")
    parser.add_argument("--seed", type=int, default=0, help="default 0")
    parser.add_argument("--log-every", type=int, default=NEVER,
                        help="the bestiary run's log_every (default: no log before the last step)")
    parser.add_argument("--json", type=Path, metavar="FILE", help="also write the results to FILE as JSON")
    parser.add_argument("--check", action="store_true", help="exit 1 when the median ratio misses the target")
    args = parser.parse_args(argv)
    if args.steps < 1 or args.warmup < 1 or args.repeats < 1 or args.batch_size < 1 or args.threads < 1:
        parser.error("--steps, --warmup, --repeats, --batch-size and --threads must be at least 1")
    if args.log_every < 1:
        parser.error("--log-every must be at least 1")
    if not (args.device == "cpu" or args.device == "cuda" or args.device.startswith("cuda:")):
        parser.error("--device is cpu, cuda or cuda:N")
    import torch

    if args.device.startswith("cuda") and not torch.cuda.is_available():
        parser.error(f"--device {args.device}: torch sees no CUDA device")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    import torch

    started = time.perf_counter()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    kind = "cuda" if args.device.startswith("cuda") else "cpu"
    target = TARGETS[kind]
    plugin_name, plugin = install_plugins(args.arch)
    plugin.data = make_data(args)

    method = {
        "device": f"{args.device}: {device_name(args.device)}",
        "python": platform.python_version(),
        "torch": torch.__version__,
        "timm": version("timm"),
        "bestiary": bestiary.__version__,
        "threads": torch.get_num_threads(),
        "model": f"timm {args.arch} (num_classes={args.num_classes}, in_chans=3, random init)",
        "inputs": f"3x{args.image_size}x{args.image_size} random, {len(plugin.data.train)} samples",
        "batch_size": args.batch_size,
        "steps": f"{args.steps} timed after {args.warmup} warm-up (per run)",
        "repeats": f"{args.repeats} pairs, order flipping each repeat",
        "precision": args.precision,
        "channels_last": args.channels_last,
        "compile": args.compile,
        "optimizer": f"SGD lr {LR}, momentum {MOMENTUM}, nesterov, no weight decay; constant lr",
        "log_every": args.log_every if args.log_every < NEVER else "never before the last step",
        "run hooks": ", ".join(f"{p.name} ({p.source})" for p in bestiary.get_host().plugins
                               if p.status == "ok" and any(h.startswith("on_") for h in p.hooks)),
        "seed": args.seed,
        "clock": "global optimizer step post-hook, perf_counter"
        + (", CUDA synchronized at the window's ends" if kind == "cuda" else ""),
    }
    print("bestiary trainer overhead benchmark")
    for key, value in method.items():
        print(f"  {key:<14} {value}")
    print()

    clock = StepClock()
    pairs: list[dict[str, Any]] = []
    try:
        with tempfile.TemporaryDirectory(prefix="bench_trainer-") as tmp:
            for i in range(args.repeats):
                order = ("bestiary", "hand") if i % 2 == 0 else ("hand", "bestiary")
                runs: dict[str, dict[str, Any]] = {}
                for side in order:
                    if side == "bestiary":
                        runs[side] = run_bestiary(args, plugin_name, plugin, clock, Path(tmp), i)
                    else:
                        runs[side] = run_hand(args, plugin, clock)
                b, h = runs["bestiary"], runs["hand"]
                diff = max_param_diff(b.pop("model"), h.pop("model"))
                pair = {"order": list(order), "bestiary": b, "hand": h,
                        "ratio": b["samples_per_s"] / h["samples_per_s"],
                        "step_ratio": h["median_step_ms"] / b["median_step_ms"],
                        "max_param_diff": diff}
                pairs.append(pair)
                print_pair(i, pair)
                gc.collect()
    finally:
        clock.close()

    ratios = [p["ratio"] for p in pairs]
    median = statistics.median(ratios)
    b_all = [p["bestiary"]["samples_per_s"] for p in pairs]
    h_all = [p["hand"]["samples_per_s"] for p in pairs]
    print()
    for label, values in (("bestiary", b_all), ("hand    ", h_all)):
        print(f"{label} samples/s: median {statistics.median(values):.1f}"
              f"  (min {min(values):.1f}, max {max(values):.1f})")
    print("ratios bestiary/hand: " + ", ".join(f"{r:.4f}" for r in ratios))
    step_ratios = [p["step_ratio"] for p in pairs]
    if kind == "cpu":  # CUDA runs ahead of the host: single steps are not timed there
        print("median-step-time ratios hand/bestiary (less sensitive to stalls; not the figure): "
              + ", ".join(f"{r:.4f}" for r in step_ratios) + f"; median {statistics.median(step_ratios):.4f}")
    ok = median >= target
    print(f"median ratio {median:.4f}   target >= {target:.2f}: {'ok' if ok else 'MISS'}")
    runs_done = [r for p in pairs for r in (p["bestiary"], p["hand"])]
    others = [r["others_cores"] for r in runs_done if r["others_cores"] is not None]
    busy = bool(others) and max(others) > BUSY_CORES
    if busy:
        print(f"note: other processes kept up to {max(others):.2f} CPU cores busy during a timed window:"
              " they competed with the benchmark, and the figure carries their noise; rerun it on a quiet"
              " machine")
    elapsed = time.perf_counter() - started
    print(f"benchmark wall time {elapsed:.0f} s")
    if args.json:
        results = {"method": method, "pairs": pairs, "ratios": ratios, "median_ratio": median,
                   "target": target, "ok": ok, "step_ratios": step_ratios, "busy": busy,
                   "wall_time_s": elapsed}
        args.json.write_text(json.dumps(results, indent=2, default=str) + "\n", encoding="utf-8")
        print(f"wrote {args.json}")
    return 1 if args.check and not ok else 0


if __name__ == "__main__":
    sys.exit(main())
