"""Forecasting figures of the time-series plugin, measured on this machine.

Run ``python benchmarks/scripts/bench_timeseries.py``.

1. Accuracy: on real series that statsmodels ships (``co2``, ``elnino``; ``--datasets`` adds
   ``sunspots``, ``us_macro``), ``seasonal_naive``, ``lstm`` and ``deepar`` are each trained with
   ``bestiary.engine.trainer.train`` and evaluated on the held-out test windows (the dataset's fixed
   backtest split) with ``evaluate_run``. Target: ``deepar`` and ``lstm`` beat ``seasonal_naive`` on
   MASE and on mean weighted quantile loss on at least two datasets.
2. Parity with gluonts: ``deepar`` through bestiary against gluonts' own
   ``DeepAREstimator(...).train`` (lightning), same network hyperparameters (context 2H, 2 layers of
   40, dropout 0.1, Student-t, 100 sample paths), same optimisation (Adam(W) lr 1e-3, weight decay
   1e-8, gradient clipping 10, constant learning rate), same data (the training part of the split),
   50 batches of 32 windows per epoch, same epochs; runs interleaved, one seed after the other.
   Both forecasts are scored by gluonts' ``Evaluator`` on the same test windows. Targets: mean wQL
   within 10 % of gluonts', wall time per epoch at most 1.1x gluonts' (each: the wall time of the
   whole training call, setup and saving included, over the epochs; bestiary's includes one
   validation pass at the end).

Both parts run torch on ``--threads`` threads (1 by default: on a shared machine more threads only
contend; set it to the core count on a quiet one).
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

from bestiary.benchmarks.method import cpu_name

ARCHS = ("seasonal_naive", "lstm", "deepar")
#: per architecture: run config fields beyond the dataset (the baseline only fits its spread)
RECIPES: dict[str, dict[str, Any]] = {
    "seasonal_naive": {"epochs": 5, "lr": 1e-2},
    "lstm": {"epochs": 15, "lr": 1e-3},
    "deepar": {"epochs": 15, "lr": 1e-3},
}
PARITY_RECIPE = {"lr": 1e-3, "weight_decay": 1e-8, "clip_grad_norm": 10.0, "schedule": "constant", "batch_size": 32}


def accuracy(dataset: str, arch: str, root: Path, epochs: int | None) -> dict[str, Any]:
    from bestiary.engine.config import RunConfig
    from bestiary.engine.evaluate import evaluate_run
    from bestiary.engine.trainer import train

    recipe = dict(RECIPES[arch])
    if epochs is not None and arch != "seasonal_naive":
        recipe["epochs"] = epochs
    started = time.perf_counter()
    summary = train(RunConfig(arch=arch, dataset=dataset, run_dir=str(root / f"{dataset}-{arch}"), quiet=True, **recipe))
    wall = time.perf_counter() - started
    test = evaluate_run(summary["run_dir"], split="test")
    return {"dataset": dataset, "arch": arch, "epochs": summary["epochs"], "mase": test["mase"],
            "mean_wql": test["mean_wql"], "wall_time_s": round(wall, 1)}


def gluonts_windows(dataset: str) -> tuple[Any, list[dict[str, Any]], list[Any], dict[str, Any]]:
    """The dataset's training series and test windows in gluonts' form."""
    import pandas as pd

    import bestiary

    data = bestiary.get_entry("datasets", dataset).build()
    info = data.info
    train_items = data.train.prepared.series.items
    def period(item: Any) -> Any:  # gluonts indexes by periods: MS becomes M, QS becomes Q-DEC
        return pd.date_range(item.start, periods=1, freq=info["freq"]).to_period()[0]

    training = [{"start": period(it), "target": it.target} for it in train_items]
    inputs, truths = [], []
    for k in range(len(data.test)):
        item, t = data.test.history(k)
        inputs.append({"start": period(item), "target": item.target[:t], "item_id": item.item_id})
        index = pd.period_range(period(item), periods=min(t + info["prediction_length"], len(item.target)))
        truths.append(pd.DataFrame(item.target[: len(index)].astype("float64"), index=index))
    return training, inputs, truths, {**info, "period_freq": period(train_items[0]).freqstr}


def parity_gluonts(dataset: str, epochs: int, seed: int, root: Path) -> dict[str, Any]:
    # gluonts' own estimator and lightning trainer: the reference this benchmark compares with
    import lightning.pytorch as pl
    from gluonts.dataset.common import ListDataset
    from gluonts.evaluation import Evaluator
    from gluonts.torch.model.deepar import DeepAREstimator

    training, inputs, truths, info = gluonts_windows(dataset)
    h = info["prediction_length"]
    pl.seed_everything(seed, workers=True, verbose=False)
    estimator = DeepAREstimator(
        freq=info["period_freq"], prediction_length=h, context_length=info["context_length"], num_layers=2, hidden_size=40,
        dropout_rate=0.1, lr=1e-3, weight_decay=1e-8, batch_size=32, num_batches_per_epoch=50,
        trainer_kwargs={"max_epochs": epochs, "enable_progress_bar": False, "logger": False,
                        "enable_model_summary": False, "accelerator": "cpu", "default_root_dir": str(root)},
    )
    started = time.perf_counter()
    predictor = estimator.train(ListDataset(training, freq=info["period_freq"]))
    wall = time.perf_counter() - started
    forecasts = list(predictor.predict(ListDataset(inputs, freq=info["period_freq"])))
    agg, _ = Evaluator(num_workers=0)(iter(truths), iter(forecasts), num_series=len(truths))
    return {"mean_wql": float(agg["mean_wQuantileLoss"]), "mase": float(agg["MASE"]), "s_per_epoch": wall / epochs}


def parity_bestiary(dataset: str, epochs: int, seed: int, root: Path) -> dict[str, Any]:
    from bestiary.engine.config import RunConfig
    from bestiary.engine.evaluate import evaluate_run
    from bestiary.engine.trainer import train

    run_dir = root / f"parity-{dataset}-{seed}"
    started = time.perf_counter()
    summary = train(RunConfig(arch="deepar", dataset=dataset, epochs=epochs, seed=seed, eval_every=epochs + 1,
                              run_dir=str(run_dir), quiet=True, **PARITY_RECIPE))
    wall = time.perf_counter() - started  # like gluonts' figure: setup, every epoch, saving the model
    test = evaluate_run(summary["run_dir"], split="test")
    return {"mean_wql": test["mean_wql"], "mase": test["mase"], "s_per_epoch": wall / epochs}


def method(threads: int) -> dict[str, Any]:
    import gluonts
    import lightning
    import torch

    import bestiary

    return {"device": cpu_name(), "cpus": os.cpu_count(), "torch_threads": threads, "torch": torch.__version__,
            "gluonts": gluonts.__version__, "lightning": lightning.__version__, "bestiary": bestiary.__version__,
            "python": platform.python_version(), "load_average": round(os.getloadavg()[0], 2)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", default="co2,elnino", help="comma-separated datasets for the accuracy table")
    parser.add_argument("--epochs", type=int, help="epochs of lstm and deepar (default: their recipes, 15)")
    parser.add_argument("--parity-dataset", default="us_macro", help="16 test windows: less noise than co2's 4")
    parser.add_argument("--parity-epochs", type=int, default=10)
    parser.add_argument("--seeds", type=int, default=3, help="parity repeats (interleaved), averaged")
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--skip", choices=["accuracy", "parity"], action="append", default=[])
    parser.add_argument("--json", help="also write the results to this file")
    args = parser.parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    info = method(args.threads)
    print("method: " + ", ".join(f"{k}={v}" for k, v in info.items()))
    results: dict[str, Any] = {"method": info}
    ok = True
    with tempfile.TemporaryDirectory() as tmp:
        if "accuracy" not in args.skip:
            rows = [accuracy(d, a, Path(tmp), args.epochs) for d in args.datasets.split(",") for a in ARCHS]
            results["accuracy"] = rows
            print(f"\naccuracy on the test windows (recipes: {json.dumps(RECIPES)})")
            print(f"{'dataset':<10} {'arch':<15} {'epochs':>6} {'MASE':>8} {'mean wQL':>9} {'wall s':>7}  beats seasonal_naive")
            wins: dict[str, int] = {}
            for row in rows:
                base = next(r for r in rows if r["dataset"] == row["dataset"] and r["arch"] == "seasonal_naive")
                beats = row["mase"] < base["mase"] and row["mean_wql"] < base["mean_wql"]
                if row["arch"] != "seasonal_naive":
                    wins[row["arch"]] = wins.get(row["arch"], 0) + beats
                print(f"{row['dataset']:<10} {row['arch']:<15} {row['epochs']:>6} {row['mase']:>8.4f} "
                      f"{row['mean_wql']:>9.5f} {row['wall_time_s']:>7.1f}  "
                      f"{'-' if row['arch'] == 'seasonal_naive' else ('yes' if beats else 'NO')}")
            held = all(wins.get(a, 0) >= 2 for a in ("lstm", "deepar"))
            ok &= held
            print(f"target (deepar and lstm beat seasonal_naive on MASE and mean wQL on >= 2 datasets): "
                  f"{'OK' if held else 'MISSED'} ({wins})")
        if "parity" not in args.skip:
            ours, theirs = [], []
            for seed in range(args.first_seed, args.first_seed + args.seeds):
                theirs.append(parity_gluonts(args.parity_dataset, args.parity_epochs, seed, Path(tmp)))
                ours.append(parity_bestiary(args.parity_dataset, args.parity_epochs, seed, Path(tmp)))
                print(f"seed {seed}: gluonts {theirs[-1]}, bestiary {ours[-1]}", flush=True)
            def mean(rows: list[dict[str, Any]], k: str) -> float:
                return sum(r[k] for r in rows) / len(rows)

            wql_ratio = mean(ours, "mean_wql") / mean(theirs, "mean_wql")
            time_ratio = mean(ours, "s_per_epoch") / mean(theirs, "s_per_epoch")
            results["parity"] = {"gluonts": theirs, "bestiary": ours, "wql_ratio": wql_ratio, "time_ratio": time_ratio}
            held = abs(wql_ratio - 1) <= 0.10 and time_ratio <= 1.1
            ok &= held
            print(f"\nparity on {args.parity_dataset}, {args.parity_epochs} epochs x 50 batches of 32, {args.seeds} seeds: "
                  f"mean wQL bestiary {mean(ours, 'mean_wql'):.5f} vs gluonts {mean(theirs, 'mean_wql'):.5f} "
                  f"(ratio {wql_ratio:.3f}, target within 10 %); s/epoch bestiary {mean(ours, 's_per_epoch'):.2f} vs "
                  f"gluonts {mean(theirs, 's_per_epoch'):.2f} (ratio {time_ratio:.2f}, target <= 1.1): "
                  f"{'OK' if held else 'MISSED'}")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
