"""What do the debugger's default rules cost? Training throughput with ``--rules default`` over without.

Run it with the interpreter bestiary is installed in::

    python benchmarks/scripts/bench_debugger.py [--steps 150] [--warmup 5] [--repeats 3] [--debug-every 50]
        [--arch resnet18] [--batch-size 32] [--img-size 32] [--device cpu] [--json FILE] [--check]

Each repeat trains the same model on ``digits`` twice in this process, from the same seed, on the
same batches: once with no rules, once with ``rules="default"`` (every built-in rule; collection
every ``--debug-every`` steps, and at step 1). The order flips from one repeat to the next so a
drifting machine favours neither side. Runs use adamw, a constant learning rate, ``log_every``
10, ``quiet``, no TensorBoard (``BESTIARY_TENSORBOARD=0``: it costs both sides the same and only
adds noise).

Timing: a global optimizer step post-hook stamps ``time.perf_counter()`` after every optimizer step
(synchronising first on CUDA); samples/s is ``steps * batch_size`` over the time from the end of
step ``warmup`` to the end of step ``warmup + steps`` (the run spans as many epochs as that takes,
and evaluates only after its last step, outside the window). The window holds ``steps / debug_every``
collection steps, so choose ``steps`` as a multiple of ``debug_every`` for an unbiased figure.
The overhead of a repeat is ``1 - rules / plain`` samples/s; the figure is the median over repeats.
On a shared machine the two runs of a repeat can drift apart by more than the overhead, so the
script also prints the extra time of the collection steps inside each rules run (the steps around
each collection against the run's median step), which drift between runs does not touch.

With ``--check`` the exit status is 1 when the median overhead is 3 % or more.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from typing import Any

from bestiary.benchmarks import method

TARGET = 0.03


def one_run(args: argparse.Namespace, rules: str | None, root: str) -> dict[str, Any]:
    import torch  # the benchmark trains; imported here so --help stays instant
    from torch.optim.optimizer import register_optimizer_step_post_hook

    import bestiary
    from bestiary.engine.config import RunConfig
    from bestiary.engine.trainer import train

    stamps: list[float] = []
    cuda = args.device.startswith("cuda")

    def stamp(*_: Any) -> None:
        if cuda:
            torch.cuda.synchronize()
        stamps.append(time.perf_counter())

    handle = register_optimizer_step_post_hook(stamp)
    try:
        config = RunConfig(arch=args.arch, dataset="digits", data={"img_size": args.img_size}, batch_size=args.batch_size,
                           epochs=10_000, eval_every=10_000, max_steps=args.warmup + args.steps, lr=1e-3, schedule="constant", log_every=10,
                           quiet=True, device=args.device, runs_root=root,
                           options={"debugger": {"rules": rules, "debug_every": args.debug_every}} if rules else {})
        summary = train(config, host=bestiary.get_host())
    finally:
        handle.remove()
    window = stamps[args.warmup + args.steps - 1] - stamps[args.warmup - 1]
    return {"samples_per_s": args.steps * args.batch_size / window, "status": summary["status"],
            "run_dir": summary["run_dir"], "in_run": in_run_overhead(stamps, args) if rules else None}


def in_run_overhead(stamps: list[float], args: argparse.Namespace) -> float:
    """The collection steps' extra time over the window, from the rules run's own step times.

    A machine that drifts between two runs moves their throughputs apart; inside one run, the
    steps around a collection against the median step measure the collection alone. A collection
    after step ``c`` lands in the time of step ``c`` or ``c + 1``, so both are counted.
    """
    # step s (1-based) ends at stamps[s - 1]; its duration is stamps[s - 1] - stamps[s - 2]
    first, last = args.warmup + 1, args.warmup + args.steps
    duration = {s: stamps[s - 1] - stamps[s - 2] for s in range(first, last + 1)}
    collected = {c for c in range(first, last + 1) if c % args.debug_every == 0}
    touched = {s for c in collected for s in (c, c + 1) if s in duration}
    typical = statistics.median(d for s, d in duration.items() if s not in touched)
    extra = sum(duration[s] - typical for s in touched)
    return extra / (stamps[last - 1] - stamps[first - 2])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", default="resnet18")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--img-size", type=int, default=32)
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--debug-every", type=int, default=50)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--json", dest="json_path")
    parser.add_argument("--check", action="store_true")
    args = parser.parse_args(argv)
    os.environ["BESTIARY_TENSORBOARD"] = "0"
    load = method.load_average()
    rows = []
    with tempfile.TemporaryDirectory() as root:
        for repeat in range(args.repeats):
            order = [None, "default"] if repeat % 2 == 0 else ["default", None]
            result = {rules: one_run(args, rules, root) for rules in order}
            plain, ruled = result[None], result["default"]
            findings_file = os.path.join(ruled["run_dir"], "findings.jsonl")
            findings = 0
            if os.path.exists(findings_file):
                with open(findings_file) as f:
                    findings = len(f.read().splitlines())
            overhead = 1 - ruled["samples_per_s"] / plain["samples_per_s"]
            rows.append({"repeat": repeat + 1, "plain_samples_per_s": plain["samples_per_s"],
                         "rules_samples_per_s": ruled["samples_per_s"], "overhead": overhead,
                         "in_run_overhead": ruled["in_run"], "findings": findings})
            print(f"repeat {repeat + 1}: rules off {plain['samples_per_s']:.2f} samples/s, default rules "
                  f"{ruled['samples_per_s']:.2f} samples/s, overhead {overhead:+.2%} (in-run "
                  f"{ruled['in_run']:+.2%}), findings {findings}", flush=True)
    median = statistics.median(r["overhead"] for r in rows)
    in_run = statistics.median(r["in_run_overhead"] for r in rows)
    print(f"\noverhead of the default rules: {median:+.2%} of samples/s (median of {len(rows)}; target < {TARGET:.0%})")
    print(f"collection steps' extra time within the rules runs: {in_run:+.2%} of their window (median; "
          "insensitive to drift between runs)")
    print("\nmethod:")
    for key, value in (
        ("model", (f"{args.arch} on digits ({args.img_size}x{args.img_size}, 1 channel, 10 classes), "
                   f"batch {args.batch_size}, adamw lr 1e-3 constant, fp32")),
        ("window", (f"{args.steps} timed steps after {args.warmup} warm-up steps; collection every "
                    f"{args.debug_every} steps ({args.steps // args.debug_every} collection step(s) in the window)")),
        ("rules", "default (16 built-in rules" + ("; the 4 GPU rules stay off on the CPU)" if args.device == "cpu"
                                                  else ", the 4 GPU rules included)")),
        ("repeats", f"{args.repeats}, order alternating, median of per-repeat overheads"),
        ("device", f"{args.device}; CPU {method.cpu_name()}, {method.cpu_count()} cores"),
        ("versions", (f"bestiary {method.version('bestiary')}, torch {method.version('torch')}, "
                      f"timm {method.version('timm')}, python {sys.version.split()[0]}")),
        ("load", load),
    ):
        print(f"  {key:<9} {value}")
    if args.json_path:
        with open(args.json_path, "w") as out:
            json.dump({"median_overhead": median, "median_in_run_overhead": in_run, "target": TARGET, "repeats": rows, "args": vars(args)}, out, indent=2)
    return 1 if args.check and median >= TARGET else 0


if __name__ == "__main__":
    sys.exit(main())
