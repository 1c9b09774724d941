"""Tuner figures: overhead per trial, and what pruning saves.

Run ``python benchmarks/scripts/bench_tune.py``.

* overhead: a study of ``--trials`` (20) trials of a small model (resnet18 on digits, one epoch,
  TPE sampler, median pruner, journal file). Overhead is the tuner's wall time that is not spent
  inside the runs (``Trainer`` setup and ``run``): asking and telling, sampling, heartbeats, the
  check for stale trials; per trial it is compared with the mean trial time. Target: < 5 %.
* pruning: the same sequence of configurations (a seeded random sampler over the entry's space)
  trained without pruning and with ``--pruner`` (successive halving by default); the figure is
  the best validation accuracy of each and the epochs both trained. Target: the pruned study's
  best within 1 % of the unpruned one's with at most 60 % of its epochs.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bestiary.benchmarks.method import cpu_name, load_average, version


def method(args: argparse.Namespace) -> dict[str, Any]:
    import torch

    import bestiary

    return {"device": cpu_name(), "cpus": os.cpu_count(), "threads": torch.get_num_threads(),
            "torch": torch.__version__, "optuna": version("optuna"), "bestiary": bestiary.__version__,
            "python": platform.python_version(), "load_average": load_average(),
            "model": f"{args.arch} on {args.dataset}, batch {args.batch_size}"}


def overhead(args: argparse.Namespace, root: Path) -> dict[str, Any]:
    from bestiary.tune.study import make_tuner

    tuner = make_tuner(args.arch, args.dataset, runs_root=str(root / "overhead"), epochs=1,
                       batch_size=args.batch_size, sampler_seed=0, study="overhead")
    started = time.perf_counter()
    tuner.optimize(args.trials)
    wall = time.perf_counter() - started
    trials = [t for t in tuner.study.get_trials() if "train_call_s" in t.user_attrs]
    inside = sum(t.user_attrs["train_call_s"] for t in trials)
    per_trial = (wall - inside) / len(trials)
    mean_trial = wall / len(trials)
    gaps = sorted((t.duration.total_seconds() - t.user_attrs["train_call_s"]) for t in trials)
    return {"trials": len(trials), "wall_s": wall, "mean_trial_s": mean_trial, "overhead_per_trial_s": per_trial,
            "overhead_pct": 100 * per_trial / mean_trial, "median_in_trial_overhead_s": gaps[len(gaps) // 2],
            "states": sorted({t.state.name for t in tuner.study.get_trials()})}


def pruning(args: argparse.Namespace, root: Path) -> dict[str, Any]:
    from bestiary.engine.rundir import RunDir
    from bestiary.tune.study import make_tuner

    out = {}
    for pruner in ("none", args.pruner):
        tuner = make_tuner(args.arch, args.dataset, runs_root=str(root / pruner), epochs=args.epochs,
                           batch_size=args.batch_size, sampler="random", sampler_seed=0, pruner=pruner, study=pruner)
        started = time.perf_counter()
        tuner.optimize(args.prune_trials)
        trials = tuner.study.get_trials()
        epochs = sum(RunDir(t.user_attrs["run_dir"]).read_json("summary.json").get("epochs", 0) for t in trials)
        best = max(t.value for t in trials if t.state.name == "COMPLETE")
        out[pruner] = {"best_accuracy": best, "epochs": epochs, "wall_s": time.perf_counter() - started,
                       "pruned": sum(t.state.name == "PRUNED" for t in trials), "trials": len(trials)}
    base, pruned = out["none"], out[args.pruner]
    out["best_gap_pct"] = 100 * (base["best_accuracy"] - pruned["best_accuracy"]) / base["best_accuracy"]
    out["epochs_pct"] = 100 * pruned["epochs"] / base["epochs"]
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=["overhead", "pruning", "all"], default="all")
    parser.add_argument("--arch", default="resnet18")
    parser.add_argument("--dataset", default="digits")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--trials", type=int, default=20, help="trials of the overhead study")
    parser.add_argument("--prune-trials", type=int, default=12, help="trials of each pruning study")
    parser.add_argument("--epochs", type=int, default=4, help="epochs of a pruning-study trial")
    parser.add_argument("--pruner", default="halving", choices=["median", "hyperband", "halving"])
    parser.add_argument("--json", help="also write the results to this file")
    args = parser.parse_args(argv)
    info = method(args)
    print("method: " + ", ".join(f"{k}={v}" for k, v in info.items()))
    results: dict[str, Any] = {}
    ok = True
    with tempfile.TemporaryDirectory() as tmp:
        if args.part in ("overhead", "all"):
            r = results["overhead"] = overhead(args, Path(tmp))
            good = r["overhead_pct"] < 5
            ok &= good
            print(f"overhead: {r['overhead_per_trial_s'] * 1e3:.0f} ms per trial = {r['overhead_pct']:.2f} % of the "
                  f"mean trial ({r['mean_trial_s']:.2f} s) over {r['trials']} trials of one epoch, TPE + median "
                  f"pruner, journal storage (target < 5 %) {'OK' if good else 'MISSED'}")
        if args.part in ("pruning", "all"):
            r = results["pruning"] = pruning(args, Path(tmp))
            good = r["best_gap_pct"] <= 1 and r["epochs_pct"] <= 60
            ok &= good
            print(f"pruning ({args.pruner}): best accuracy {r[args.pruner]['best_accuracy']:.4f} vs "
                  f"{r['none']['best_accuracy']:.4f} unpruned (gap {r['best_gap_pct']:.2f} %), "
                  f"{r[args.pruner]['epochs']} of {r['none']['epochs']} epochs ({r['epochs_pct']:.0f} %), "
                  f"{r[args.pruner]['pruned']} of {r[args.pruner]['trials']} trials pruned; {args.prune_trials} "
                  f"random-sampler trials (seed 0) of {args.epochs} epochs each (target: gap <= 1 %, "
                  f"epochs <= 60 %) {'OK' if good else 'MISSED'}")
    if args.json:
        Path(args.json).write_text(json.dumps({"method": info, "results": results}, indent=2, default=str))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
