"""A user's own CSV, end to end through the CLI as docs/timeseries.md shows it: train, predict to
CSV and Parquet, evaluate with a forecast plot."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest


def _sales(path: Path) -> None:
    rng = np.random.default_rng(0)
    rows = []
    for k, item in enumerate(("north", "south")):
        for t, stamp in enumerate(pd.date_range("2024-01-01", periods=120, freq="D")):
            rows.append({"item_id": item, "timestamp": stamp.date().isoformat(),
                         "target": round(20 + 5 * k + 3 * np.sin(2 * np.pi * t / 7) + rng.normal(0, 0.5), 3)})
    pd.DataFrame(rows).to_csv(path, index=False)


def _invoke(*args: str) -> str:
    """The CLI in this process (the training above ran as a real subprocess)."""
    from click.testing import CliRunner

    from bestiary.cli import main

    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.stdout


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "bestiary", *args], check=False, cwd=cwd, env=env,
                          capture_output=True,
                          text=True, timeout=300)


@pytest.mark.slow
def test_forecast_your_own_csv(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _sales(tmp_path / "sales.csv")
    monkeypatch.chdir(tmp_path)  # the run records data.path as given: relative to where the user works
    done = _cli("train", "deepar", "--dataset", "series_file", "--set", "data.path=sales.csv", "--set", "data.freq=D",
                "--set", "data.prediction_length=14", "--epochs", "1", "--max-steps", "4", "--batch-size", "8",
                "--set", "model.hidden_size=8", "--set", "model.num_parallel_samples=20",
                "--run-dir", "runs/sales", "--quiet", "--json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["status"] == "completed" and {"mase", "mean_wql"} <= set(summary["final"])

    run = "runs/sales"
    _invoke("predict", run, "--input", "sales.csv", "--output", "forecast.csv")
    with open(tmp_path / "forecast.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 2 * 14
    first = rows[0]
    assert first["item_id"] == "north" and first["timestamp"].startswith("2024-04-30") and first["step"] == "1"
    assert {"mean", "median", "q0.1", "q0.9"} <= set(first)
    assert float(first["q0.1"]) <= float(first["median"]) <= float(first["q0.9"])

    _invoke("predict", run, "--input", "sales.csv", "--output", "forecast.parquet")
    table = pd.read_parquet(tmp_path / "forecast.parquet")
    assert len(table) == 28 and table["item_id"].tolist()[-1] == "south"

    result = json.loads(_invoke("evaluate", run, "--json"))
    assert result["mase"] > 0 and set(result["wql"]) == {str(q) for q in (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)}
    (plot,) = result["report"]
    assert plot.endswith("forecasts.png") and (tmp_path / plot).read_bytes()[:4] == b"\x89PNG"
