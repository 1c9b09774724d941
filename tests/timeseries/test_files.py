"""User series files: long CSV/Parquet and gluonts JSON lines, frequency inference, masked gaps,
and clear errors for unsorted, duplicated or irregular timestamps."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bestiary.plugins.timeseries.files import series_file


def _long(path: Path, n: int = 60, items: tuple[str, ...] = ("a", "b"), freq: str = "D", **extra) -> pd.DataFrame:  # type: ignore[no-untyped-def]
    rows = []
    for k, item in enumerate(items):
        for t, stamp in enumerate(pd.date_range("2024-01-01", periods=n, freq=freq)):
            rows.append({"item_id": item, "timestamp": stamp, "target": 10 * k + t % 7 + 0.5 * t, **extra})
    frame = pd.DataFrame(rows)
    if path.suffix == ".parquet":
        frame.to_parquet(path)
    else:
        frame.to_csv(path, index=False)
    return frame


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_long_file_infers_frequency_and_splits_by_time(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"sales{suffix}"
    _long(path)
    data = series_file(str(path), prediction_length=7)
    info = data.info
    assert info["freq"] == "D" and info["prediction_length"] == 7 and info["num_items"] == 2
    assert info["season_length"] == 7 and info["covariates"] == []
    assert len(data.test) == 2 and len(data.validation) == 2
    window = data.test[0]
    assert window["future_target"].tolist() == [float(v) for v in (np.arange(53, 60) % 7 + 0.5 * np.arange(53, 60))]
    assert window["seasonal_error"] > 0


def test_gaps_and_empty_targets_are_masked_not_dropped(tmp_path: Path) -> None:
    path = tmp_path / "gaps.csv"
    frame = _long(path, items=("a",))
    frame = frame.drop(index=[50])  # a missing day
    frame.loc[57, "target"] = np.nan  # an empty target
    frame.to_csv(path, index=False)
    data = series_file(str(path), freq="D", prediction_length=5)
    test = data.test[0]
    assert test["future_observed"].tolist() == [1, 1, 0, 1, 1]  # the test window is days 55..59
    val = data.validation[0]
    assert val["future_observed"].tolist() == [0, 1, 1, 1, 1]  # day 50 is missing, not dropped


def test_covariates_become_time_features(tmp_path: Path) -> None:
    path = tmp_path / "promo.csv"
    _long(path, promo=1.0)
    data = series_file(str(path), prediction_length=7)
    assert data.info["covariates"] == ["promo"]
    assert data.info["num_time_features"] == len(data.info["time_features"])
    assert data.test[0]["future_time_feat"][:, -1].tolist() == [1.0] * 7


def test_json_lines_need_a_frequency(tmp_path: Path) -> None:
    path = tmp_path / "series.jsonl"
    lines = [{"start": "2020-01-01", "target": [float(v) for v in range(40)], "item_id": "x"},
             {"start": "2020-02-01", "target": [1.0, None] * 20}]
    path.write_text("".join(json.dumps(x) + "\n" for x in lines))
    with pytest.raises(ValueError, match="pass it with --set data.freq=D"):
        series_file(str(path))
    data = series_file(str(path), freq="W", prediction_length=4)
    assert data.info["freq"] == "W-SUN" and data.info["item_ids"] == ["x", "1"]
    assert data.test[1]["future_observed"].tolist() == [1, 0, 1, 0]


def test_bad_timestamps_fail_with_the_row_and_the_remedy(tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    frame = _long(path, items=("a",))
    frame.iloc[[10, 11]] = frame.iloc[[11, 10]].to_numpy()
    frame.to_csv(path, index=False)
    with pytest.raises(ValueError, match=r"item 'a' are not sorted.*sort the rows"):
        series_file(str(path), freq="D")
    frame = _long(path, items=("a",))
    pd.concat([frame, frame.iloc[[5]]]).sort_values("timestamp", kind="stable").to_csv(path, index=False)
    with pytest.raises(ValueError, match=r"duplicated.*one row per item and timestamp"):
        series_file(str(path), freq="D")
    frame = _long(path, items=("a",))
    frame.loc[20, "timestamp"] = frame.loc[20, "timestamp"] + pd.Timedelta(hours=5)
    frame.to_csv(path, index=False)
    with pytest.raises(ValueError, match="cannot infer the frequency"):
        series_file(str(path))
    with pytest.raises(ValueError, match=r"irregular timestamps in item 'a'.*not on the D grid"):
        series_file(str(path), freq="D")


def test_missing_file_and_columns_say_what_to_pass(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="--set data.path="):
        series_file()
    with pytest.raises(FileNotFoundError, match="--set data.path=FILE"):
        series_file(str(tmp_path / "nope.csv"))
    path = tmp_path / "cols.csv"
    pd.DataFrame({"date": ["2024-01-01"], "sales": [1.0]}).to_csv(path, index=False)
    with pytest.raises(ValueError, match="timestamp_column="):
        series_file(str(path))


def test_predict_inputs_take_future_covariates_from_rows_without_target(tmp_path: Path) -> None:
    from bestiary.plugins.timeseries.report import load_history

    path = tmp_path / "promo.csv"
    frame = _long(path, n=30, items=("a",), promo=0.0)
    future = pd.DataFrame({"item_id": "a", "timestamp": pd.date_range("2024-01-31", periods=3, freq="D"),
                           "target": np.nan, "promo": [1.0, 0.0, 1.0]})
    pd.concat([frame, future]).to_csv(path, index=False)
    info = {"freq": "D", "prediction_length": 3, "context_length": 6, "covariates": ["promo"]}
    batch = load_history(str(path), info)
    assert batch["timestamps"] == [["2024-01-31 00:00:00", "2024-02-01 00:00:00", "2024-02-02 00:00:00"]]
    assert batch["past_target"][0, -1] == float(frame["target"].iloc[-1])
    assert batch["future_time_feat"][0, :, -1].tolist() == [1.0, 0.0, 1.0]
    frame.to_csv(path, index=False)  # no future rows: the covariates' future is unknown
    with pytest.raises(ValueError, match="add 3 rows after its last target"):
        load_history(str(path), info)
