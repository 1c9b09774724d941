"""Digits accuracy figures of the vision plugin: resnet18 and a small ViT trained on this machine.

Run ``python benchmarks/scripts/bench_vision.py``.
Each recipe trains with ``bestiary.engine.trainer.train`` on ``digits`` at its recommended 32x32
and evaluates the test split; the script prints test accuracy, epochs, wall time and the method.
Targets: resnet18 >= 0.97 and the ViT >= 0.93 test accuracy, each in under 5 minutes on 2 CPU cores.
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

RECIPES: dict[str, dict[str, Any]] = {
    "resnet18": {"arch": "resnet18", "epochs": 15, "batch_size": 64, "optimizer": "sgd", "lr": 0.1,
                 "weight_decay": 5e-4, "warmup_steps": 40, "label_smoothing": 0.1, "target": 0.97},
    "vit_tiny": {"arch": "vit_tiny_patch16_224", "epochs": 30, "batch_size": 64, "optimizer": "adamw", "lr": 1e-3,
                 "weight_decay": 0.05, "warmup_steps": 100, "label_smoothing": 0.1,
                 "model": {"depth": 6, "patch_size": 8},
                 "target": 0.93},
}
LIMIT_S = 300


def run(name: str, recipe: dict[str, Any], root: Path) -> dict[str, Any]:
    from bestiary.engine.config import RunConfig
    from bestiary.engine.evaluate import evaluate_run
    from bestiary.engine.trainer import train

    fields = {k: v for k, v in recipe.items() if k != "target"}
    started = time.perf_counter()
    summary = train(RunConfig(dataset="digits", run_dir=str(root / name), quiet=True, **fields))
    wall = time.perf_counter() - started
    test = evaluate_run(summary["run_dir"], split="test")
    return {"recipe": name, "arch": recipe["arch"], "epochs": summary["epochs"], "steps": summary["steps"],
            "test_accuracy": test["accuracy"], "validation_accuracy": summary["final"].get("accuracy"),
            "wall_time_s": round(wall, 1), "target": recipe["target"],
            "ok": test["accuracy"] >= recipe["target"] and wall < LIMIT_S}


def method() -> dict[str, Any]:
    import timm
    import torch

    import bestiary

    return {"device": cpu_name(), "cpus": os.cpu_count(), "threads": torch.get_num_threads(), "torch": torch.__version__,
            "timm": timm.__version__, "bestiary": bestiary.__version__, "python": platform.python_version(),
            "load_average": os.getloadavg()[0], "dataset": "digits (1,257 train / 180 val / 360 test, 32x32)"}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=sorted(RECIPES), action="append", help="run only these recipes")
    parser.add_argument("--json", help="also write the results to this file")
    args = parser.parse_args(argv)
    info = method()
    print("method: " + ", ".join(f"{k}={v}" for k, v in info.items()))
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.only or list(RECIPES):
            row = run(name, RECIPES[name], Path(tmp))
            rows.append(row)
            recipe = {k: v for k, v in RECIPES[name].items() if k != "target"}
            print(f"{name:<10} test accuracy {row['test_accuracy']:.4f} (target {row['target']}), "
                  f"{row['epochs']} epochs, {row['wall_time_s']:.0f} s wall (limit {LIMIT_S} s) "
                  f"{'OK' if row['ok'] else 'MISSED'}; recipe {json.dumps(recipe)}")
    if args.json:
        Path(args.json).write_text(json.dumps({"method": info, "results": rows}, indent=2))
    return 0 if all(r["ok"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
