"""``bestiary predict``: run a saved model over inputs from a file and write the predictions."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import Any

import torch  # runs a torch model; only prediction imports this module

from ..errors import ConfigError, ModelFileError, storage_error
from .assembly import load_saved
from .strategy import resolve_device


@torch.no_grad()
def predict_file(run_dir: str | Path, input_path: str | Path, output_path: str | Path, *,
                 batch_size: int = 256, device: str = "auto") -> int:
    """Predict for every input in ``input_path``; write JSON lines (``.jsonl``), a JSON array
    (``.json``), CSV (``.csv``) or Parquet (``.parquet``, flat rows such as forecasts).

    :param batch_size: inputs per forward pass, at least 1.
    :return: the number of predictions written.
    :raises ConfigError: for a batch size below 1.
    :raises DataError: for inputs the model cannot take (the task's ``load_inputs`` names the file
        and the field or row).
    """
    if batch_size < 1:
        raise ConfigError(f"--batch-size must be at least 1, got {batch_size}")
    dev = resolve_device(device)
    saved = load_saved(run_dir, device=dev)
    task, model = saved.task, saved.load_model()
    info = saved.meta.get("data_info", {})
    inputs = task.load_inputs(str(input_path), info)
    rows: list[dict[str, Any]] = []
    for start in range(0, _length(inputs), batch_size):
        batch = task.to_device(_slice(inputs, start, start + batch_size), dev)
        for row in task.format_predictions(task.predict(model, batch), info):
            row["index"] += start
            rows.append(row)
    _check_finite(rows, saved.path)
    try:
        _write(rows, Path(output_path))
    except OSError as exc:
        raise (storage_error(exc, output_path) or exc) from exc
    return len(rows)


def _write(rows: list[dict[str, Any]], out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix == ".csv":
        with open(out, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(rows[0]) if rows else ["index"])
            writer.writeheader()
            for row in rows:
                writer.writerow({k: json.dumps(v) if isinstance(v, (list, dict)) else v for k, v in row.items()})
    elif out.suffix == ".parquet":
        import pandas as pd  # Parquet through pandas/pyarrow, only when asked for

        pd.DataFrame(rows).to_parquet(out, index=False)
    elif out.suffix == ".json":
        out.write_text(json.dumps(rows, indent=1) + "\n")
    else:
        out.write_text("".join(json.dumps(r) + "\n" for r in rows))


def _check_finite(rows: list[dict[str, Any]], run_dir: Path) -> None:
    """Refuse to write NaN or infinite predictions (inputs are checked, so the model made them)."""
    def finite(value: Any) -> bool:
        if isinstance(value, float):
            return math.isfinite(value)
        if isinstance(value, dict):
            return all(finite(v) for v in value.values())
        if isinstance(value, list):
            return all(finite(v) for v in value)
        return True

    for row in rows:
        if not finite(row):
            raise ModelFileError(f"the model of {run_dir} predicts non-finite values for input {row['index']}; its "
                                 "weights are likely NaN or infinite (see the run's loss): train it again")


def _length(inputs: Any) -> int:
    if isinstance(inputs, dict):
        return int(next(iter(inputs.values())).shape[0])
    return int(inputs.shape[0])


def _slice(inputs: Any, a: int, b: int) -> Any:
    if isinstance(inputs, dict):
        return {k: v[a:b] for k, v in inputs.items()}
    return inputs[a:b]
