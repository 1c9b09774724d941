"""The ``scaling`` measurement: one engine run per strategy and world size, in fresh processes.

Each repeat writes the cell's run config to a TOML file and starts ``python -m bestiary train
--config FILE`` (with ``--nproc-per-node N`` for a world size above one: torchrun workers, gloo on
the CPU, NCCL on CUDA), every process with ``OMP_NUM_THREADS = threads``. The figures come from
the run's ``summary.json``: training samples/s over all processes (the trainer's timed windows,
so start-up, evaluation and checkpoints are left out), the training loop's wall time and the final
validation metrics. The leaderboard adds the scaling efficiency against the ``single`` run of the
same architecture and dataset: ``samples/s / (world_size * samples/s of single)``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from .quality import _slug, run_config
from .suite import Cell


def measure(cell: Cell, workdir: Path, repeat: int) -> dict[str, Any]:
    """Run one repeat of ``cell`` in worker processes; ``{"metrics", "info"}``."""
    from bestiary.engine.torchrun import to_toml

    run_dir = (workdir / f"{_slug(cell.id)}-r{repeat}").resolve()
    shutil.rmtree(run_dir, ignore_errors=True)
    cfg = run_config(cell, run_dir, repeat)
    config_file = workdir / f"{_slug(cell.id)}-r{repeat}.toml"
    workdir.mkdir(parents=True, exist_ok=True)
    config_file.write_text(to_toml(cfg), encoding="utf-8")
    cmd = [sys.executable, "-m", "bestiary", "train", cfg.arch, "--config", str(config_file), "--json"]
    if cell.world_size > 1:
        cmd += ["--nproc-per-node", str(cell.world_size)]
    env = {**os.environ, "OMP_NUM_THREADS": str(cell.settings.get("threads") or 1)}
    try:
        proc = subprocess.run(cmd, check=False, env=env, capture_output=True, text=True,
                              timeout=float(cell.settings.get("timeout_s", 900)))
    except subprocess.TimeoutExpired as exc:
        raise RuntimeError(f"`{' '.join(cmd)}` ran past {exc.timeout:.0f} s (settings.timeout_s)") from None
    summary_file = run_dir / "summary.json"
    if proc.returncode != 0 or not summary_file.exists():
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-6:]
        raise RuntimeError(f"`bestiary train` exited with status {proc.returncode}: " + " | ".join(tail))
    summary = json.loads(summary_file.read_text())
    if summary.get("status") not in ("completed", "stopped"):
        raise RuntimeError(f"the run ended {summary.get('status')}: {summary.get('error', '')}")
    metrics = {k: float(v) for k, v in (summary.get("final") or {}).items()
               if isinstance(v, (int, float)) and not isinstance(v, bool)}
    metrics["wall_time_s"] = float(summary["wall_time_s"])
    if summary.get("train_samples_per_s"):
        metrics["train_samples_per_s"] = float(summary["train_samples_per_s"])
    shutil.rmtree(run_dir / "checkpoints", ignore_errors=True)
    best = summary.get("best") or {}
    info = {"run_dir": str(run_dir), "steps": summary.get("steps"), "primary": "train_samples_per_s",
            "mode": "max", "monitor": best.get("metric"), "threads_per_process": env["OMP_NUM_THREADS"]}
    return {"metrics": metrics, "info": info}
