"""Reports that do not mislead: one metric and one task per ranking, split named in each header,
bar plots whose value axis shows small differences, and whiskers only where repeats spread."""

from __future__ import annotations

import copy
import textwrap
from pathlib import Path
from typing import Any

import pytest

from bestiary.benchmarks.report import bar_figure, leaderboard, write_reports
from bestiary.benchmarks.runner import run_suite
from bestiary.benchmarks.suite import read_suite

MIXED = """
    description = "a classifier and a forecaster"
    measure = "quality"
    repeats = 1
    [[matrix]]
    architectures = ["toy_mlp"]
    datasets = ["blobs"]
    config = { epochs = 1, batch_size = 16, device = "cpu" }
    [[matrix]]
    architectures = ["toy_linear"]
    datasets = ["sine"]
    config = { epochs = 1, batch_size = 16, device = "cpu" }
    """


@pytest.fixture(scope="module")
def mixed_rows(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    """One real repeat of a classifier on blobs and of a forecaster on sine."""
    from benchhosts import make_toy_host

    import bestiary

    tmp = tmp_path_factory.mktemp("mixed")
    (tmp / "mixed.toml").write_text(textwrap.dedent(MIXED))
    previous = bestiary.get_host()
    bestiary.reset_host(make_toy_host())
    try:
        rows = run_suite(read_suite(tmp / "mixed.toml"), tmp / "out", echo=lambda _: None)
    finally:
        bestiary.reset_host(previous)
    assert [r["status"] for r in rows] == ["ok", "ok"], rows
    return rows


def _copy(row: dict[str, Any], arch: str, metric: str, values: list[float], **changes: Any) -> dict[str, Any]:
    planted = copy.deepcopy(row)
    planted.update(arch=arch, cell=f"{arch}/{row['cell']}", **changes)
    planted["metrics"][metric] = {"median": sorted(values)[len(values) // 2], "min": min(values), "max": max(values),
                                  "values": values}
    return planted


def test_leaderboard_names_the_split_and_keeps_tasks_apart(mixed_rows, toy_host) -> None:
    text = leaderboard(mixed_rows, "mixed")
    assert "## quality on blobs" in text and "## quality on sine" in text
    blobs = text.split("## quality on sine")[0]
    assert "test accuracy (higher is better)" in blobs and "Ranked by test accuracy (higher is better)." in blobs
    # the loss is each model's own objective: labelled, never given a direction
    assert "test loss (each model's own objective, not comparable)" in text
    assert "loss (lower is better)" not in text
    # rows of another measure over several datasets are split per dataset too
    scaling = [dict(r, measure="scaling", primary="train_samples_per_s") for r in mixed_rows]
    text = leaderboard(scaling, "scaling")
    assert "## scaling on blobs" in text and "## scaling on sine" in text


def test_a_table_is_ranked_by_one_metric(mixed_rows, toy_host) -> None:
    """A cell whose primary metric differs (another target) is ranked by the table's metric."""
    (mlp, _) = mixed_rows
    acc = mlp["metrics"]["accuracy"]["median"]
    worse = _copy(mlp, "worse", "accuracy", [acc / 2], primary="loss")
    worse["metrics"]["loss"] = {"median": -1e9, "min": -1e9, "max": -1e9, "values": [-1e9]}  # the best loss
    text = leaderboard([mlp, worse], "one metric")
    rows = [line for line in text.splitlines() if line.startswith(("| 1 |", "| 2 |"))]
    assert rows[0].startswith("| 1 | toy_mlp |") and rows[1].startswith("| 2 | worse |"), rows


def test_close_values_get_a_cut_axis_and_labels(mixed_rows, toy_host, tmp_path: Path) -> None:
    import matplotlib.pyplot as plt
    from matplotlib.container import ErrorbarContainer

    (mlp, _) = mixed_rows
    acc = min(mlp["metrics"]["accuracy"]["median"], 0.99)
    group = [_copy(mlp, "a", "accuracy", [acc]), _copy(mlp, "b", "accuracy", [acc - 0.006])]
    fig = bar_figure(group, "accuracy", "close")
    ax = fig.axes[0]
    bottom, top = ax.get_ylim()
    assert 0 < bottom < acc - 0.006 and top > acc  # the axis shows the data's range, not 0 to 1
    assert any("value axis cut: starts at" in t.get_text() for t in ax.texts)
    assert {f"{acc:.4g}", f"{acc - 0.006:.4g}"} <= {t.get_text() for t in ax.texts}  # each bar says its value
    assert not [c for c in ax.containers if isinstance(c, ErrorbarContainer)]  # one repeat each: no whiskers
    assert "one repeat: no spread" in ax.get_title()
    plt.close(fig)
    # whiskers for the row of three repeats only; values far apart keep the axis at 0
    spread = [_copy(mlp, "a", "accuracy", [0.9, 0.8, 0.95]), _copy(mlp, "b", "accuracy", [0.3])]
    fig = bar_figure(spread, "accuracy", "apart")
    ax = fig.axes[0]
    (bars,) = [c for c in ax.containers if isinstance(c, ErrorbarContainer)]
    (segments,) = bars.lines[2]
    assert len(segments.get_segments()) == 1 and ax.get_ylim()[0] == 0
    assert not any("axis cut" in t.get_text() for t in ax.texts)
    plt.close(fig)
    _, files = write_reports(group, tmp_path, "close")
    assert (tmp_path / "quality-blobs-accuracy.png").read_bytes()[:4] == b"\x89PNG"
    assert len(files) == 3
