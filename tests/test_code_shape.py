"""The engine keeps its functions short: a run's steps stay readable and separately testable."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks" / "scripts"))
from function_lengths import lengths

LIMIT = 60


def test_no_function_in_the_engine_is_longer_than_the_limit() -> None:
    long = [(n, where) for n, where in lengths(("core/engine",)) if n > LIMIT]
    assert not long, f"functions in core/engine over {LIMIT} lines (split them into named steps): {long}"


def test_the_measure_sees_the_engine() -> None:
    found = {where.split()[1]: n for n, where in lengths(("core/engine",))}
    assert "train_step" in found and 1 < found["train_step"] <= LIMIT
