"""How much training state does one rank hold under the fsdp strategy? Measured, not estimated.

Run it with the interpreter bestiary is installed in (it starts its own ranks with torchrun)::

    python benchmarks/scripts/bench_fsdp.py [--arch resnet18] [--nproc 2] [--json FILE] [--check]

Method. Every rank builds the same timm model (same seed, ``pretrained=False``, 1000 classes) and
one rank-0 process also keeps an unsharded copy. The sharded model goes through
:class:`bestiary.plugins.parallel.fsdp.FSDPStrategy` ``prepare_model`` (FSDP2 ``fully_shard`` per
block, then the root, on a CPU mesh over gloo); both models train one AdamW step on the same random
batch. After ``backward`` and ``step`` (gradients not yet freed) the script sums, on each rank,
the bytes of the tensors that rank actually holds:

* parameters: ``p.to_local()`` of each sharded parameter (``p`` itself when unsharded);
* gradients: ``p.grad.to_local()``;
* optimizer state: every tensor in ``optimizer.state`` (``exp_avg``, ``exp_avg_sq`` as local
  shards, the ``step`` counters), via ``to_local()`` where they are DTensors.

``numel * element_size`` of the local storage is counted, so FSDP's padding of uneven shards is
included. Buffers (BatchNorm running statistics) are not sharded by FSDP and are listed apart. The
figure is the largest rank's total over the unsharded total; the target at two ranks is <= 0.55.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from typing import Any

TARGET = 0.55


def _local_bytes(t: Any) -> int:
    t = t.to_local() if hasattr(t, "to_local") else t
    return t.numel() * t.element_size()


def measure(model: Any, optimizer: Any) -> dict[str, int]:
    """Bytes of parameters, gradients, optimizer state and buffers this process holds."""
    import torch  # measured tensors are torch tensors

    opt = sum(_local_bytes(v) for s in optimizer.state.values() for v in s.values() if isinstance(v, torch.Tensor))
    return {
        "parameters": sum(_local_bytes(p) for p in model.parameters()),
        "gradients": sum(_local_bytes(p.grad) for p in model.parameters() if p.grad is not None),
        "optimizer": opt,
        "buffers": sum(_local_bytes(b) for b in model.buffers()),
    }


def one_step(model: Any, x: Any, y: Any) -> Any:
    import torch

    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    torch.nn.functional.cross_entropy(model(x), y).backward()
    optimizer.step()  # gradients kept, so they are counted
    return optimizer


def worker(args: argparse.Namespace) -> None:
    import timm  # the measured model family
    import torch
    import torch.distributed as dist

    from bestiary.plugins.parallel.fsdp import FSDPStrategy

    strategy = FSDPStrategy()
    strategy.setup("cpu")
    try:
        torch.manual_seed(0)
        model = timm.create_model(args.arch, pretrained=False)
        g = torch.Generator().manual_seed(1)
        x = torch.randn(2, 3, args.size, args.size, generator=g)
        y = torch.randint(0, 1000, (2,), generator=g)
        whole = None
        if strategy.is_main:
            import copy

            plain = copy.deepcopy(model)
            whole = measure(plain, one_step(plain, x, y))
            del plain
        sharded = strategy.prepare_model(model)
        rank = strategy.rank
        mine = measure(sharded, one_step(sharded, x[rank::strategy.world_size], y[rank::strategy.world_size]))
        per_rank: list[Any] = [None] * strategy.world_size
        dist.all_gather_object(per_rank, mine)
        if strategy.is_main:
            _report(args, whole, per_rank)
        dist.barrier()  # no rank leaves while another still uses the group
    finally:
        strategy.teardown()


def _report(args: argparse.Namespace, whole: dict[str, int], per_rank: list[dict[str, int]]) -> None:
    keys = ("parameters", "gradients", "optimizer")
    total = sum(whole[k] for k in keys)
    worst = max(sum(r[k] for k in keys) for r in per_rank)
    ratio = worst / total
    mb = 1e6
    print(f"{args.arch}, world size {len(per_rank)}, AdamW, one step (bytes of tensors held, MB)")
    print(f"{'':12}{'unsharded':>12}" + "".join(f"{'rank ' + str(i):>12}" for i in range(len(per_rank))))
    for k in (*keys, "buffers"):
        print(f"{k:12}{whole[k] / mb:12.2f}" + "".join(f"{r[k] / mb:12.2f}" for r in per_rank))
    print(f"{'total':12}{total / mb:12.2f}" + "".join(f"{sum(r[k] for k in keys) / mb:12.2f}" for r in per_rank)
          + "   (parameters + gradients + optimizer state)")
    print(f"largest rank / unsharded: {ratio:.3f} (target <= {TARGET})")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"arch": args.arch, "world_size": len(per_rank), "unsharded": whole, "per_rank": per_rank,
                       "ratio": ratio, "target": TARGET}, f, indent=2)
    if args.check and ratio > TARGET:
        raise SystemExit(f"ratio {ratio:.3f} above target {TARGET}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--arch", default="resnet18", help="timm model name")
    parser.add_argument("--nproc", type=int, default=2, help="ranks (world size)")
    parser.add_argument("--size", type=int, default=64, help="image side of the one training batch")
    parser.add_argument("--json", help="also write the figures to this file")
    parser.add_argument("--check", action="store_true", help=f"exit 1 when the ratio is above {TARGET}")
    args = parser.parse_args(argv)
    if "RANK" in os.environ:
        worker(args)
        return 0
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={args.nproc}",
           os.path.abspath(__file__), *(argv if argv is not None else sys.argv[1:])]
    return subprocess.run(cmd, env=env, check=False).returncode


if __name__ == "__main__":
    sys.exit(main())
