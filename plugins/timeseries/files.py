"""User series from files: long CSV or Parquet (one row per item and timestamp) and gluonts JSON
lines (one series per line). Timestamps are checked per item: unsorted, duplicated or off-grid
timestamps fail with the row that breaks the rule; steps missing from the grid and empty targets
become missing values, which are masked, but a series without a single number fails."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from bestiary.extend import ConfigError, Data, DataError

from .series import PREDICTION_LENGTH, Item, SeriesSet, freq_base, normalise_freq
from .windows import backtest_data

SUFFIXES = (".csv", ".parquet", ".pq", ".jsonl", ".json")


def read_table(path: Path) -> Any:
    import pandas as pd  # reading user files is pandas' job

    try:
        if path.suffix in (".parquet", ".pq"):
            return pd.read_parquet(path)
        return pd.read_csv(path)
    except pd.errors.EmptyDataError:
        return pd.DataFrame()
    except (ValueError, OSError, UnicodeDecodeError) as exc:  # pandas' and pyarrow's errors name no file
        raise DataError(f"{path}: cannot read it as {path.suffix[1:].upper()} ({exc}); "
                        "pass a long table with one row per item and timestamp") from exc


def infer_freq(stamps: list[Any], path: Path) -> str:
    """The frequency of the first item pandas can infer one for; items that disagree fail."""
    import pandas as pd

    found: dict[str, str] = {}
    for item_id, index in stamps:
        if len(index) >= 3:
            f = pd.infer_freq(pd.DatetimeIndex(index))
            if f is not None:
                found.setdefault(normalise_freq(f), str(item_id))
    if not found:
        raise DataError(
            f"{path}: cannot infer the frequency (each item needs 3 or more evenly spaced timestamps); "
            "pass it with --set data.freq=D (or h, W, W-SAT, MS, QS, YS, ...); missing steps then become masked values"
        )
    if len(found) > 1:
        shown = ", ".join(f"{f} (item {i})" for f, i in found.items())
        raise DataError(f"{path}: items have different frequencies: {shown}; pass one with --set data.freq=...")
    return next(iter(found))


def _on_grid(item_id: str, stamps: Any, freq: str, path: Path) -> tuple[Any, np.ndarray]:
    """Positions of ``stamps`` on the grid of ``freq`` from the first one, checking their order."""
    import pandas as pd

    stamps = pd.DatetimeIndex(stamps)
    step = np.flatnonzero(np.diff(stamps.asi8) <= 0) if len(stamps) > 1 else np.array([], int)
    if step.size:
        k = int(step[0])
        what = "duplicated" if stamps[k + 1] == stamps[k] else "not sorted"
        raise DataError(
            f"{path}: timestamps of item {item_id!r} are {what}: {stamps[k + 1]} follows {stamps[k]} "
            f"(position {k + 1} of the item); " + ("keep one row per item and timestamp" if what == "duplicated"
                                                   else "sort the rows by item and timestamp")
        )
    grid = pd.date_range(stamps[0], stamps[-1], freq=freq)
    if len(grid) == 0 or grid[0] != stamps[0]:
        raise DataError(f"{path}: item {item_id!r} starts at {stamps[0]}, which is not a {freq} timestamp; "
                         "pass the frequency that matches the data with --set data.freq=...")
    positions = grid.get_indexer(stamps)
    bad = np.flatnonzero(positions < 0)
    if bad.size:
        raise DataError(
            f"{path}: irregular timestamps in item {item_id!r}: {stamps[int(bad[0])]} is not on the {freq} grid "
            f"that starts at {stamps[0]}; pass the right --set data.freq=..., or resample the data to a regular grid"
        )
    return stamps[0], positions


def read_long(path: Path, freq: str | None, *, item_column: str, timestamp_column: str, target_column: str,
              covariates: list[str] | None) -> tuple[list[Item], str, list[str]]:
    """Items of a long table; ``covariates`` ``None``: every other numeric column."""
    import pandas as pd

    frame = read_table(path)
    if frame.empty:
        raise DataError(f"{path}: no rows; write one row per item and timestamp ({item_column}, {timestamp_column}, "
                          f"{target_column})")
    missing = [c for c in (timestamp_column, target_column) if c not in frame.columns]
    if missing:
        raise DataError(f"{path}: no column {' or '.join(map(repr, missing))} (columns: {', '.join(map(str, frame.columns))}); "
                         "name them with --set data.timestamp_column=... / target_column=...")
    if item_column not in frame.columns:
        frame[item_column] = "0"  # one series
    if covariates is None:
        skip = {item_column, timestamp_column, target_column}
        covariates = [c for c in frame.columns if c not in skip and pd.api.types.is_numeric_dtype(frame[c])]
    absent = [c for c in covariates if c not in frame.columns]
    if absent:
        raise ConfigError(f"{path}: data.covariates names {', '.join(map(repr, absent))}, not a column "
                          f"(columns: {', '.join(map(str, frame.columns))}); name columns of the file, or \"\" for none")
    try:
        frame[timestamp_column] = pd.to_datetime(frame[timestamp_column])
    except (ValueError, TypeError) as exc:
        raise DataError(f"{path}: column {timestamp_column!r} holds values that are not timestamps ({exc}); "
                          "write dates such as 2024-01-31, or name the timestamp column with --set data.timestamp_column=...") from exc
    groups = [(item_id, group) for item_id, group in frame.groupby(item_column, sort=False)]
    freq = normalise_freq(freq) if freq else infer_freq([(i, g[timestamp_column]) for i, g in groups], path)
    items = []
    for item_id, group in groups:
        start, positions = _on_grid(str(item_id), group[timestamp_column], freq, path)
        length = int(positions[-1]) + 1
        target = np.full(length, np.nan, np.float32)
        target[positions] = _column_numbers(group[target_column], str(item_id), target_column, path)
        if np.isinf(target).any():  # non-numeric cells are missing values, an infinity is an error
            row = group.index[int(np.flatnonzero(np.isinf(target[positions]))[0])]
            raise DataError(f"{path}: data row {row + 1}, item {str(item_id)!r}: the {target_column} is infinite; "
                            "give a finite number, or leave the cell empty for a missing value")
        cov = np.zeros((len(covariates), length), np.float32)
        for r, name in enumerate(covariates):
            cov[r, positions] = np.nan_to_num(pd.to_numeric(group[name], errors="coerce").to_numpy(np.float32))
        items.append(Item(str(item_id), start, target, cov))
    return items, freq, list(covariates)


#: The start of a JSON lines series that gives none (``{"target": [...]}``): the Unix epoch.
DEFAULT_START = "1970-01-01"


def _column_numbers(column: Any, item_id: str, name: str, path: Path) -> np.ndarray:
    """The values of a target ``column`` as floats, empty or non-numeric ones NaN; a series with no
    number at all fails: it has nothing to learn from or to forecast."""
    import pandas as pd

    values = pd.to_numeric(column, errors="coerce").to_numpy(np.float32)
    if not np.isfinite(values).any():
        given = column.dropna()
        what = (f"holds no numbers (its {len(given)} non-empty values are not numeric, e.g. {given.iloc[0]!r})"
                if len(given) else f"is empty (all {len(column)} values missing)")
        raise DataError(f"{path}: column {name!r} of item {item_id!r} {what}; give the item at least one "
                        "number (empty cells become masked missing values), or drop its rows")
    return values


def read_jsonl(path: Path, freq: str | None) -> tuple[list[Item], str, list[str]]:
    """gluonts JSON lines: ``{"start": ..., "target": [...], "item_id": ..., "feat_dynamic_real": [[...]]}``;
    only ``target`` is required (``start`` defaults to :data:`DEFAULT_START`)."""
    import json

    import pandas as pd

    if not freq:
        raise DataError(f"{path}: JSON lines give a start, not a frequency; pass it with --set data.freq=D (or h, W, MS, ...)")
    freq = normalise_freq(freq)
    items: list[Item] = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line, parse_constant=_no_constant)
            if not isinstance(record, dict) or "target" not in record:
                raise KeyError("target")
            target = _numbers(record["target"], "target", 1, missing=True)
            start = pd.Timestamp(str(record.get("start", DEFAULT_START)))
            cov = _numbers(record.get("feat_dynamic_real", np.zeros((0, len(target)))), "feat_dynamic_real", 2)
        except (ValueError, KeyError, TypeError) as exc:
            raise DataError(f"{path}, line {n}: not a series ({type(exc).__name__}: {exc}); write one JSON object per "
                            "line with 'target' (a list of finite numbers, null where missing) and optionally "
                            "'start' (a timestamp), 'item_id' and 'feat_dynamic_real'") from exc
        item_id = str(record.get("item_id", len(items)))
        if not np.isfinite(target).any():
            what = "is empty" if len(target) == 0 else f"holds no numbers (all {len(target)} values are null)"
            raise DataError(f"{path}, line {n}: the target of item {item_id!r} {what}; a series needs numbers "
                            "(null only where one is missing), or drop the line")
        try:
            cov = cov.reshape(-1, len(target))
        except ValueError as exc:
            raise DataError(f"{path}, line {n}: feat_dynamic_real of item {item_id!r} is not rows of numbers as long "
                            f"as its target ({len(target)}): {exc}") from exc
        items.append(Item(item_id, start, target, cov))
    if not items:
        raise DataError(f"{path}: no series; write one JSON object per line with 'target' (and optionally 'start')")
    counts = {it.covariates.shape[0] for it in items}
    if len(counts) > 1:
        raise DataError(f"{path}: items have different numbers of feat_dynamic_real rows ({sorted(counts)}); "
                        "give every item the same covariates")
    names = [f"feat_dynamic_real_{k}" for k in range(counts.pop() if counts else 0)]
    return items, freq, names


def _no_constant(name: str) -> None:
    raise ValueError(f"{name} is not a number JSON allows; use null for a missing value")


def _numbers(values: Any, field: str, ndim: int, *, missing: bool = False) -> np.ndarray:
    """``values`` (a list, or a list of lists) as float32, refusing anything but finite real numbers:
    strings, booleans and complex values would otherwise be cast or fail deep in numpy.

    :param ndim: 1 for a list, 2 for a list of lists of the same length.
    :param missing: whether ``null`` is allowed (it becomes NaN, a missing value).
    """
    arr = np.asarray(values, dtype=object)
    if arr.ndim != ndim:
        shape = "a list of numbers" if ndim == 1 else "a list of lists of numbers, all of the target's length"
        raise TypeError(f"{field} must be {shape}, got {json_text(values)}")
    for index, value in np.ndenumerate(arr):
        if value is None and missing:
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not np.isfinite(value):
            raise ValueError(f"{field}{list(index)} is {value!r}, not a finite number")
    return np.array([[np.nan if v is None else v for v in row] for row in arr] if arr.ndim == 2 else
                    [np.nan if v is None else v for v in arr], dtype=np.float32)


def json_text(value: Any, limit: int = 60) -> str:
    """``value`` as short JSON for a message."""
    import json

    text = json.dumps(value.tolist() if isinstance(value, np.ndarray) else value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def read_series(path: str | Path, freq: str | None = None, *, item_column: str = "item_id",
                timestamp_column: str = "timestamp", target_column: str = "target",
                covariates: list[str] | None = None) -> tuple[list[Item], str, list[str]]:
    """Items, frequency and covariate names of a series file (by its suffix)."""
    p = Path(path).expanduser()
    if not p.exists():
        raise FileNotFoundError(f"{p}: no such file; pass your series file with --set data.path=FILE")
    if p.suffix not in SUFFIXES:
        raise DataError(f"{p}: unknown series file type {p.suffix!r}; use one of {', '.join(SUFFIXES)}")
    if p.suffix in (".jsonl", ".json"):
        return read_jsonl(p, freq)
    return read_long(p, freq, item_column=item_column, timestamp_column=timestamp_column,
                     target_column=target_column, covariates=covariates)


def horizon(prediction_length: Any, freq: str) -> int:
    """``prediction_length`` checked, or the default for ``freq`` when it is ``None``."""
    default = PREDICTION_LENGTH.get(freq_base(freq), 12)
    if prediction_length is None:
        return default
    try:
        h = int(prediction_length)
        whole = not isinstance(prediction_length, bool) and float(prediction_length) == h
    except (TypeError, ValueError):
        whole, h = False, 0
    if not whole or h < 1:  # 0 must not fall back to the default as a falsy value would
        raise ConfigError(f"data.prediction_length must be a whole number of steps >= 1, got {prediction_length!r}; "
                          f"pass --set data.prediction_length=N, or leave it out for the default of {freq} data ({default})")
    return h


def series_file(path: str | None = None, freq: str | None = None, prediction_length: int | None = None,
                context_length: int | None = None, test_windows: int = 1, val_windows: int = 1,
                item_column: str = "item_id", timestamp_column: str = "timestamp", target_column: str = "target",
                covariates: str | list[str] | None = None, season_length: int | None = None, seed: int = 0) -> Data:
    """Your series: a long CSV/Parquet file (``item_id``, ``timestamp``, ``target``, other numeric
    columns as covariates) or gluonts JSON lines, at ``path`` (``--set data.path=FILE``).

    :param freq: pandas frequency; inferred from the timestamps of a CSV/Parquet file when omitted.
    :param prediction_length: horizon (default by frequency: 24 hourly, 14 daily, 13 weekly, 12 monthly, ...).
    :param covariates: comma-separated covariate columns (default: every other numeric column; ``""``: none).
    """
    if not path:
        raise ConfigError("series_file needs your file: --set data.path=sales.csv (long CSV/Parquet or gluonts JSON lines)")
    names = [c for c in covariates.split(",") if c] if isinstance(covariates, str) else covariates
    items, freq, cov_names = read_series(path, freq, item_column=item_column, timestamp_column=timestamp_column,
                                         target_column=target_column, covariates=names)
    h = horizon(prediction_length, freq)
    series = SeriesSet(items, freq, h, context_length, cov_names, season_length)
    return backtest_data(series, test_windows=test_windows, val_windows=val_windows, seed=seed, source=str(path))
