"""Weak scaling of the ``ddp`` strategy: how much of a second process's throughput survives DDP.

Run it with the interpreter bestiary is installed in::

    python benchmarks/scripts/bench_ddp.py [--batch-sizes 8,32,128] [--steps N] [--warmup N] [--repeats N]
                                   [--threads N] [--json FILE]

Method. timm ``resnet18`` (10 classes) on random 3 x 32 x 32 images, SGD (lr 0.01, momentum 0.9),
fp32, through the strategies' own ``prepare_model`` / ``forward_backward`` / ``optimizer_step``:

* **1 process**: the ``single`` strategy, one process started with ``OMP_NUM_THREADS=threads``;
* **2 processes**: the ``ddp`` strategy under ``torch.distributed.run --standalone
  --nproc-per-node 2`` (gloo on the CPU, NCCL on CUDA), each process with the same thread count
  and the same per-process batch (weak scaling: the global batch doubles).

Each worker runs every batch size in turn: ``warmup`` steps, a barrier, then ``steps`` timed
steps and a barrier (on CUDA a synchronize first); the time is rank 0's. Throughput is
``world * batch * steps / time``; efficiency is ``throughput(2) / (2 * throughput(1))``, 1.0 being
perfect scaling. Each repeat launches both configurations, the order flipping from one repeat to
the next so a drifting machine does not favour one side; the figure is the median over repeats.
Process start-up, model building and warm-up are outside the timed window.

On a machine with fewer free cores than ``2 * threads`` the two processes compete for cores and
the figure measures the machine, not DDP; the script prints the core count and the load average.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bestiary.benchmarks.method import cpu_name

TARGET = 0.8  # efficiency wanted at the largest batch


def worker(batch_sizes: list[int], steps: int, warmup: int, out: str, device: str = "cpu") -> None:
    """One process of a measurement; rank 0 writes ``{batch: seconds}`` to ``out``."""
    import timm  # the measured model; only workers import it
    import torch

    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1:
        from bestiary.plugins.parallel.ddp import DDPStrategy

        strategy: Any = DDPStrategy()
    else:
        from bestiary.engine.strategy import Strategy

        strategy = Strategy()
    strategy.setup(device)
    try:
        torch.manual_seed(0)
        model = strategy.prepare_model(timm.create_model("resnet18", num_classes=10))
        optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
        model.train()

        def loss_fn(m: torch.nn.Module, batch: Any) -> tuple[torch.Tensor, Any]:
            x, y = batch
            out_ = m(x)
            return torch.nn.functional.cross_entropy(out_, y), out_

        def sync() -> None:
            if strategy.device.type == "cuda":
                torch.cuda.synchronize()
            strategy.barrier()

        times: dict[int, float] = {}
        for batch_size in batch_sizes:
            g = torch.Generator().manual_seed(strategy.rank)
            batch = (torch.randn(batch_size, 3, 32, 32, generator=g).to(strategy.device),
                     torch.randint(0, 10, (batch_size,), generator=g).to(strategy.device))
            for i in range(warmup + steps):
                if i == warmup:
                    sync()
                    start = time.perf_counter()
                strategy.forward_backward(model, batch, loss_fn, autocast=contextlib.nullcontext(),
                                          scale=1.0)
                strategy.optimizer_step(model, optimizer)
            sync()
            times[batch_size] = time.perf_counter() - start
        if strategy.is_main:
            Path(out).write_text(json.dumps({"world": world, "times": times}))
    finally:
        strategy.teardown()


def measure(world: int, args: argparse.Namespace, tmp: Path) -> dict[int, float]:
    """Samples per second (all processes together) for each batch size."""
    out = tmp / f"world{world}.json"
    script = [str(Path(__file__).resolve()), "--worker", "--batch-sizes", args.batch_sizes,
              "--steps", str(args.steps), "--warmup", str(args.warmup), "--device", args.device, "--out", str(out)]
    if world == 1:
        cmd = [sys.executable, *script]
    else:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(world), *script]
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
    proc = subprocess.run(cmd, check=False, env=env, capture_output=True, text=True, timeout=1800)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    times = json.loads(out.read_text())["times"]
    return {int(b): world * int(b) * args.steps / t for b, t in times.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-sizes", default="8,32,128", help="per-process batch sizes, comma-separated")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1, help="OMP_NUM_THREADS of each process")
    parser.add_argument("--device", default="cpu", help="cpu (gloo), or cuda (NCCL, one GPU per process)")
    parser.add_argument("--json", help="also write the results to this file")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    sizes = [int(b) for b in args.batch_sizes.split(",")]
    if args.worker:
        worker(sizes, args.steps, args.warmup, args.out, args.device)
        return 0

    import timm
    import torch

    cuda = args.device.startswith("cuda")
    device = torch.cuda.get_device_name(0) if cuda else f"CPU ({cpu_name()})"
    print(f"device {device}; {os.cpu_count()} cores; load average before {os.getloadavg()[0]:.2f}")
    print(f"torch {torch.__version__}, timm {timm.__version__}, python {platform.python_version()}; "
          f"backend {'nccl' if cuda else 'gloo'}")
    print(f"resnet18, 3x32x32, SGD fp32; {args.threads} thread(s) per process; {args.warmup} warm-up + "
          f"{args.steps} timed steps; {args.repeats} repeat(s), order alternating; median shown")
    runs: dict[int, dict[int, list[float]]] = {1: {b: [] for b in sizes}, 2: {b: [] for b in sizes}}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.repeats):
            for world in ((1, 2) if r % 2 == 0 else (2, 1)):
                for b, thr in measure(world, args, Path(tmp)).items():
                    runs[world][b].append(thr)
    print(f"{'batch/proc':>10} {'1 proc (samples/s)':>19} {'2 procs (samples/s)':>20} {'efficiency':>11} {'per repeat':>22}")
    results = []
    for b in sizes:
        effs = [two / (2 * one) for one, two in zip(runs[1][b], runs[2][b])]
        eff = statistics.median(effs)
        one, two = statistics.median(runs[1][b]), statistics.median(runs[2][b])
        print(f"{b:>10} {one:>19.1f} {two:>20.1f} {eff:>11.2f}  {' '.join(f'{e:.2f}' for e in effs):>21}")
        results.append({"batch_per_process": b, "samples_per_s_1": one, "samples_per_s_2": two,
                        "efficiency": eff, "efficiency_per_repeat": effs})
    print(f"load average after {os.getloadavg()[0]:.2f}; target {TARGET} at batch {sizes[-1]}: "
          f"{'met' if results[-1]['efficiency'] >= TARGET else 'missed'}")
    if args.json:
        Path(args.json).write_text(json.dumps({"device": device, "torch": torch.__version__, "timm": timm.__version__,
                                               "threads": args.threads, "steps": args.steps, "warmup": args.warmup,
                                               "repeats": args.repeats, "results": results}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
