"""Autopilot figures: digits within 5 minutes, and a real series against the seasonal naive baseline.

Run ``python benchmarks/scripts/bench_autopilot.py``.

* digits: ``bestiary autopilot --dataset digits --time-budget 5m`` with the defaults (the five
  cheapest image-classification architectures, successive halving over up to 9 epochs); the figure
  is the best model's test accuracy and the wall time. Target: >= 0.97.
* series: autopilot on a real shipped series (``co2`` by default) optimising ``mase`` with up to
  15 epochs per trial (the time-series plugin's recipes), against
  ``seasonal_naive`` trained with the run defaults; the figure is each one's test MASE. Target: the
  autopilot model's MASE below the baseline's. Needs the time-series plugin's entries.
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


def method() -> dict[str, Any]:
    import torch

    import bestiary

    return {"device": cpu_name(), "cpus": os.cpu_count(), "threads": torch.get_num_threads(),
            "torch": torch.__version__, "optuna": version("optuna"), "timm": version("timm"),
            "gluonts": version("gluonts"), "bestiary": bestiary.__version__, "python": platform.python_version(),
            "load_average": load_average()}


def digits(budget: str, root: Path) -> dict[str, Any]:
    from bestiary.tune import autopilot

    started = time.perf_counter()
    result = autopilot("digits", time_budget=budget, runs_root=str(root / "runs"), out=root / "digits")
    wall = time.perf_counter() - started
    best = result["best"] or {}
    return {"wall_s": wall, "best_arch": best.get("arch"), "test_accuracy": best.get("test_accuracy"),
            "validation_accuracy": best.get("accuracy"),
            "leaderboard": [{k: row.get(k) for k in ("arch", "accuracy", "test_accuracy", "complete", "pruned",
                                                      "train_time_s", "params", "latency_ms")}
                            for row in result["leaderboard"]]}


def series(dataset: str, budget: str, max_epochs: int, root: Path) -> dict[str, Any] | str:
    import bestiary
    from bestiary.engine.config import RunConfig
    from bestiary.engine.evaluate import evaluate_run
    from bestiary.engine.trainer import train
    from bestiary.tune import autopilot

    missing = [f"{kind} {name}" for kind, name in (("architectures", "seasonal_naive"), ("datasets", dataset),
                                                  ("metrics", "mase"))
               if not bestiary.list_entries(kind, name)]
    if missing:
        return f"skipped: no {', '.join(missing)} registered (install the time-series plugin)"
    baseline = train(RunConfig(arch="seasonal_naive", dataset=dataset, metrics=["mase"], monitor="mase", quiet=True,
                               run_dir=str(root / "seasonal_naive")))
    base_mase = evaluate_run(baseline["run_dir"], split="test")["mase"]
    started = time.perf_counter()
    result = autopilot(dataset, time_budget=budget, metric="mase", max_epochs=max_epochs, runs_root=str(root / "runs"),
                       out=root / dataset)
    best = result["best"] or {}
    return {"dataset": dataset, "wall_s": time.perf_counter() - started, "best_arch": best.get("arch"),
            "test_mase": best.get("test_mase"), "seasonal_naive_test_mase": base_mase,
            "leaderboard": [{k: row.get(k) for k in ("arch", "mase", "test_mase", "complete", "pruned", "train_time_s")}
                            for row in result["leaderboard"]]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=["digits", "series", "all"], default="all")
    parser.add_argument("--budget", default="5m", help="autopilot time budget for digits")
    parser.add_argument("--series", default="co2", help="a shipped real series")
    parser.add_argument("--series-budget", default="5m")
    parser.add_argument("--series-max-epochs", type=int, default=15,
                        help="epochs of an unstopped forecasting trial (the time-series recipes train 15)")
    parser.add_argument("--json", help="also write the results to this file")
    args = parser.parse_args(argv)
    info = method()
    print("method: " + ", ".join(f"{k}={v}" for k, v in info.items()))
    results: dict[str, Any] = {}
    ok = True
    with tempfile.TemporaryDirectory() as tmp:
        if args.part in ("digits", "all"):
            r = results["digits"] = digits(args.budget, Path(tmp))
            good = (r["test_accuracy"] or 0) >= 0.97
            ok &= good
            print(f"digits: autopilot --time-budget {args.budget}: best {r['best_arch']} test accuracy "
                  f"{r['test_accuracy'] if r['test_accuracy'] is None else round(r['test_accuracy'], 4)} "
                  f"(target >= 0.97), {r['wall_s']:.0f} s wall {'OK' if good else 'MISSED'}")
            for row in r["leaderboard"]:
                print(f"  {json.dumps(row, default=str)}")
        if args.part in ("series", "all"):
            r = results["series"] = series(args.series, args.series_budget, args.series_max_epochs, Path(tmp))
            if isinstance(r, str):
                print(f"series: {r}")
            else:
                good = r["test_mase"] is not None and r["test_mase"] < r["seasonal_naive_test_mase"]
                ok &= good
                print(f"series {r['dataset']}: autopilot --metric mase --time-budget {args.series_budget} --max-epochs "
                      f"{args.series_max_epochs}: best "
                      f"{r['best_arch']} test MASE {r['test_mase']} vs seasonal_naive {r['seasonal_naive_test_mase']:.4f} "
                      f"(target: lower), {r['wall_s']:.0f} s wall {'OK' if good else 'MISSED'}")
                for row in r["leaderboard"]:
                    print(f"  {json.dumps(row, default=str)}")
    if args.json:
        Path(args.json).write_text(json.dumps({"method": info, "results": results}, indent=2, default=str))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
