"""Series files that hold nothing to learn from, and horizons that make no sense, are refused with
one line naming the file, the series or the field, and what to do."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from bestiary.errors import ConfigError, DataError
from bestiary.plugins.timeseries.datasets import elnino
from bestiary.plugins.timeseries.files import series_file


def _csv(path: Path, target_b: object) -> Path:
    stamps = pd.date_range("2024-01-01", periods=80, freq="D")
    rows = [{"item_id": "a", "timestamp": s, "target": 10.0 + t % 7} for t, s in enumerate(stamps)]
    rows += [{"item_id": "b", "timestamp": s, "target": target_b} for s in stamps]
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


@pytest.mark.parametrize(("target", "what"), [
    ("abc", r"holds no numbers \(its 80 non-empty values are not numeric, e\.g\. 'abc'\)"),
    (None, r"is empty \(all 80 values missing\)"),
])
def test_a_series_without_numbers_is_refused(tmp_path: Path, target: object, what: str) -> None:
    path = _csv(tmp_path / "sales.csv", target)
    with pytest.raises(DataError, match=rf"^{path}: column 'target' of item 'b' {what}; give the item at least one "
                                          r"number .*, or drop its rows$"):
        series_file(str(path))


def test_a_file_without_rows_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "empty.csv"
    path.write_text("item_id,timestamp,target\n")
    with pytest.raises(DataError, match=rf"^{path}: no rows; write one row per item and timestamp"):
        series_file(str(path), freq="D")


@pytest.mark.parametrize(("target", "what"), [([], "is empty"), ([None, None, None], r"holds no numbers \(all 3 values are null\)")])
def test_a_json_line_without_numbers_is_refused(tmp_path: Path, target: list[object], what: str) -> None:
    path = tmp_path / "series.jsonl"
    lines = [{"start": "2024-01-01", "target": [1.0, 2.0, 3.0] * 10, "item_id": "ok"},
             {"start": "2024-01-01", "target": target, "item_id": "bad"}]
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    with pytest.raises(DataError, match=rf"^{path}, line 2: the target of item 'bad' {what}; a series needs numbers"):
        series_file(str(path), freq="D")
    path.write_text("\n")
    with pytest.raises(DataError, match=rf"^{path}: no series; write one JSON object per line"):
        series_file(str(path), freq="D")


@pytest.mark.parametrize("value", [0, -3, 2.5, "seven", True])
def test_a_prediction_length_below_one_is_refused_not_replaced_by_the_default(tmp_path: Path, value: object) -> None:
    path = _csv(tmp_path / "sales.csv", 1.0)
    with pytest.raises(ConfigError, match=r"^data\.prediction_length must be a whole number of steps >= 1, got "
                                          rf"{value!r}; pass --set data\.prediction_length=N, or leave it out for "
                                          r"the default of D data \(14\)$".replace("2.5", r"2\.5")):
        series_file(str(path), prediction_length=value)  # type: ignore[arg-type]
    assert series_file(str(path)).info["prediction_length"] == 14
    assert series_file(str(path), prediction_length=7.0).info["prediction_length"] == 7  # type: ignore[arg-type]


@pytest.mark.parametrize(("field", "value"), [("prediction_length", 0), ("context_length", 0), ("context_length", -1)])
def test_built_in_series_refuse_a_horizon_or_context_below_one(field: str, value: int) -> None:
    with pytest.raises(ConfigError, match=rf"^data\.{field} must be a whole number of steps >= 1, got {value}; "
                                          rf"pass --set data\.{field}=N"):
        elnino(**{field: value})


def test_unreadable_files_and_bad_columns_name_the_file_and_the_field(tmp_path: Path) -> None:
    bad = tmp_path / "sales.parquet"
    bad.write_bytes(b"not parquet at all")
    with pytest.raises(DataError, match=rf"^{bad}: cannot read it as PARQUET \(.*\); pass a long table"):
        series_file(str(bad))
    stamps = tmp_path / "stamps.csv"
    stamps.write_text("item_id,timestamp,target\na,2024-01-01,1\na,yesterday-ish,2\n")
    with pytest.raises(DataError, match=rf"^{stamps}: column 'timestamp' holds values that are not timestamps \("):
        series_file(str(stamps))
    path = _csv(tmp_path / "ok.csv", 1.0)
    with pytest.raises(ConfigError, match=rf"^{path}: data\.covariates names 'price', not a column \(columns: item_id, "
                                          r"timestamp, target\)"):
        series_file(str(path), covariates="price")
    with pytest.raises(ValueError, match=r"^data\.freq: unknown frequency 'fortnightly'; pass a pandas frequency"):
        series_file(str(path), freq="fortnightly")
    with pytest.raises(ValueError, match=r"shorter than data\.prediction_length=70 .*; lower data\.prediction_length"):
        series_file(str(path), prediction_length=70)


def test_json_covariates_of_the_wrong_length_name_the_line(tmp_path: Path) -> None:
    path = tmp_path / "series.jsonl"
    path.write_text(json.dumps({"start": "2024-01-01", "target": [1.0] * 30, "feat_dynamic_real": [[1.0] * 29]}) + "\n")
    with pytest.raises(DataError, match=rf"^{path}, line 1: feat_dynamic_real of item '0' is not rows of numbers "
                                          r"as long as its target \(30\)"):
        series_file(str(path), freq="D")
