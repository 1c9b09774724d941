"""Pipeline bubble: measured idle fraction of each stage against GPipe's (p - 1) / (m + p - 1).

Method: the pipeline strategy trains an MLP of equal halves on ``p`` processes with ``m``
micro-batches of a fixed size (so each stage's work per micro-batch stays the same). Timing hooks
wrap the stage's ``forward_one_chunk`` and ``backward_one_chunk`` (its compute, without waiting
for sends and receives); a stage's busy time is their sum over one schedule step, and its bubble
is ``1 - busy / wall`` for that step's wall time (from a barrier to the end of ``step``). The
table shows the median over the timed steps, averaged over stages.

Run: ``python benchmarks/scripts/bench_pipeline.py`` (starts torchrun with 2 processes itself) or
``python -m torch.distributed.run --standalone --nproc-per-node 2 benchmarks/scripts/bench_pipeline.py``.
Options: ``--microbatches 2 4 8 --schedule gpipe 1f1b --width 512 --mb-size 32 --steps 6``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from typing import Any


def _parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--microbatches", type=int, nargs="+", default=[2, 4, 8])
    p.add_argument("--schedule", nargs="+", default=["gpipe", "1f1b"], choices=["gpipe", "1f1b"])
    p.add_argument("--width", type=int, default=512)
    p.add_argument("--layers", type=int, default=9, help="Linear layers; with 2 stages, 4 + 4 and the head")
    p.add_argument("--mb-size", type=int, default=32, help="samples per micro-batch")
    p.add_argument("--steps", type=int, default=6, help="timed steps (after 2 warm-up steps)")
    p.add_argument("--nproc", type=int, default=2, help="processes when launching torchrun")
    return p.parse_args(argv)


def _mlp(width: int, layers: int):  # type: ignore[no-untyped-def]
    import torch

    mods: list[torch.nn.Module] = [torch.nn.Flatten()]
    for _ in range(layers - 1):
        mods += [torch.nn.Linear(width, width), torch.nn.ReLU()]
    mods.append(torch.nn.Linear(width, 10))
    return torch.nn.Sequential(*mods)


def _measure(args: argparse.Namespace) -> None:
    import torch
    import torch.distributed as dist

    from bestiary.plugins.parallel.pipeline import PipelineStrategy

    dist.init_process_group("gloo")
    p, rank = dist.get_world_size(), dist.get_rank()
    # stage boundaries at the Linear layers (even indices 1, 3, ...): spread p - 1 of them evenly
    splits = [str(1 + 2 * i) for i in range(1, args.layers)]
    def loss_fn(m: Any, b: Any) -> tuple[Any, None]:
        return torch.nn.functional.cross_entropy(m(b[0]), b[1]), None

    rows = []
    for schedule in args.schedule:
        for m in args.microbatches:
            if schedule == "1f1b" and m < p:
                continue
            torch.manual_seed(0)
            s = PipelineStrategy(parallel={"pipeline_splits": splits}, schedule=schedule, n_microbatches=m)
            s.setup("cpu")
            model = s.prepare_model(_mlp(args.width, args.layers))
            opt = torch.optim.SGD(model.parameters(), lr=1e-3)
            g = torch.Generator().manual_seed(1)
            batch = (torch.randn(m * args.mb_size, args.width, generator=g), torch.randint(0, 10, (m * args.mb_size,), generator=g))
            busy = [0.0]
            bubbles, walls = [], []
            for step in range(2 + args.steps):
                if step == 1:  # the schedule exists after the first step: wrap its compute
                    stage = next(iter(model.schedules.values()))._stage
                    for name in ("forward_one_chunk", "backward_one_chunk"):
                        fn = getattr(stage, name)

                        def timed(*a, _fn=fn, _busy=busy, **k):  # type: ignore[no-untyped-def]
                            t = time.perf_counter()
                            try:
                                return _fn(*a, **k)
                            finally:
                                _busy[0] += time.perf_counter() - t

                        setattr(stage, name, timed)
                dist.barrier()
                busy[0] = 0.0
                t0 = time.perf_counter()
                s.forward_backward(model, batch, loss_fn, autocast=torch.autocast("cpu", enabled=False), scale=1.0)
                wall = time.perf_counter() - t0
                s.optimizer_step(model, opt)
                if step >= 2:
                    bubbles.append(1 - busy[0] / wall)
                    walls.append(wall)
            mine = torch.tensor([statistics.median(bubbles), statistics.median(walls)])
            dist.all_reduce(mine)
            mine /= p
            rows.append((schedule, m, float(mine[0]), (p - 1) / (m + p - 1), float(mine[1]) * 1e3))
    if rank == 0:
        print(f"pipeline bubble, p={p} stages, {args.layers} Linear({args.width}) layers, {args.mb_size} samples "
              f"per micro-batch, median of {args.steps} steps, mean over stages")
        print("| schedule | m | measured bubble | GPipe formula (p-1)/(m+p-1) | step wall ms |")
        print("|---|---|---|---|---|")
        for schedule, m, measured, formula, wall in rows:
            print(f"| {schedule} | {m} | {measured:.3f} | {formula:.3f} | {wall:.1f} |")
    dist.destroy_process_group()


def main(argv: list[str] | None = None) -> None:
    args = _parse(argv)
    if "RANK" not in os.environ:  # not under torchrun: start it
        env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(args.nproc),
               os.path.abspath(__file__), *(argv if argv is not None else sys.argv[1:])]
        raise SystemExit(subprocess.call(cmd, env=env))
    _measure(args)


if __name__ == "__main__":
    main()
