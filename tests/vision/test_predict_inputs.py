"""predict checks image arrays against what the model was trained on, and the documented way of
building an input file gives one that passes."""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np
import pytest
from sklearn.datasets import load_digits

import bestiary
from bestiary.engine.config import RunConfig
from bestiary.engine.predict import predict_file
from bestiary.engine.trainer import train
from bestiary.errors import DataError

TRAINING_MD = Path(__file__).resolve().parents[2] / "docs" / "training.md"


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    previous = bestiary.get_host()
    bestiary.reset_host(bestiary.PluginHost(autoload=False))
    try:
        run = tmp_path_factory.mktemp("predict") / "run"
        train(RunConfig(arch="resnet18", dataset="digits", max_steps=2, batch_size=16, run_dir=str(run), quiet=True))
        return run
    finally:
        bestiary.reset_host(previous)


def documented_snippet() -> str:
    text = TRAINING_MD.read_text(encoding="utf-8")
    section = text[text.index("### Building an input file"):]
    return re.search(r"```python\n(.*?)```", section, flags=re.S).group(1)


def test_the_documented_input_file_predicts(digits_run: Path, tmp_path: Path) -> None:
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        exec(compile(documented_snippet(), "training.md", "exec"), {"run_dir": str(digits_run)})
    finally:
        os.chdir(cwd)
    assert predict_file(digits_run, tmp_path / "samples.npy", tmp_path / "p.jsonl", device="cpu") == 16


def test_raw_digits_are_refused_with_the_remedy(digits_run: Path, tmp_path: Path) -> None:
    raw = load_digits().images[:4].astype(np.float32)  # [4, 8, 8], pixels 0-16
    np.save(tmp_path / "raw.npy", raw)
    with pytest.raises(DataError, match=r"the images are 8x8, the model was trained on 32x32; resize them"):
        predict_file(digits_run, tmp_path / "raw.npy", tmp_path / "p.jsonl", device="cpu")
    big = np.kron(raw, np.ones((4, 4), np.float32))  # the right size, but raw pixel values
    np.save(tmp_path / "big.npy", big)
    with pytest.raises(DataError, match=r"values span \[0, 16\], but the model was trained on images scaled to \[0, 1\]"):
        predict_file(digits_run, tmp_path / "big.npy", tmp_path / "p.jsonl", device="cpu")
    assert not (tmp_path / "p.jsonl").exists()  # nothing written


def test_the_documented_forecasting_line_predicts(tmp_path: Path) -> None:
    import json

    text = TRAINING_MD.read_text(encoding="utf-8")
    section = text[text.index("### Building an input file"):]
    line = re.search(r"`(\{\"item_id\".*?\})`", section).group(1)
    previous = bestiary.get_host()
    bestiary.reset_host(bestiary.PluginHost(autoload=False))
    try:
        run = tmp_path / "run"
        train(RunConfig(arch="seasonal_naive", dataset="co2", max_steps=1, run_dir=str(run), quiet=True))
        (tmp_path / "series.jsonl").write_text(line + "\n")
        written = predict_file(run, tmp_path / "series.jsonl", tmp_path / "f.jsonl", device="cpu")
    finally:
        bestiary.reset_host(previous)
    rows = [json.loads(r) for r in (tmp_path / "f.jsonl").read_text().splitlines()]
    assert written == len(rows) > 0 and {r["item_id"] for r in rows} == {"a"}
    assert all(np.isfinite(r["mean"]) for r in rows)
