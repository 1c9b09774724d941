"""Running suites for real on toy entries: rows, method, repeats, reruns, reports, comparisons,
throughput with a bare loop, and halving the batch on out-of-memory."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from bestiary import hookimpl
from bestiary.benchmarks.report import compare, parse_threshold, write_reports
from bestiary.benchmarks.runner import read_rows, run_suite
from bestiary.benchmarks.suite import read_suite
from bestiary.cli import main
from bestiary.errors import ConfigError

QUALITY = """
    description = "toy quality"
    measure = "quality"
    repeats = 2
    [[matrix]]
    architectures = ["toy_mlp", "toy_mpl"]
    datasets = ["blobs"]
    config = { epochs = 2, batch_size = 16, device = "cpu", model = { hidden = 8 } }
    target = { metric = "accuracy", value = 0.3 }
    """

THROUGHPUT = """
    description = "toy throughput"
    measure = "throughput"
    [settings]
    warmup = 2
    iterations = 3
    input_size = [1, 4, 4]
    num_classes = 3
    device = "cpu"
    bare = true
    [[matrix]]
    architectures = ["{arch}"]
    batch_sizes = [16]
    """


@pytest.fixture(scope="module")
def quality_run(tmp_path_factory):
    """A two-repeat quality sweep of a toy model and a misspelt one, run once for this module's
    tests; returns (suite, out, rows, log)."""
    import textwrap

    from benchhosts import make_toy_host

    import bestiary

    tmp = tmp_path_factory.mktemp("quality")
    (tmp / "toyq.toml").write_text(textwrap.dedent(QUALITY))
    previous = bestiary.get_host()
    bestiary.reset_host(make_toy_host())
    try:
        suite = read_suite(tmp / "toyq.toml")
        log: list[str] = []
        rows = run_suite(suite, tmp / "out", echo=log.append)
    finally:
        bestiary.reset_host(previous)
    return suite, tmp / "out", rows, log


def test_quality_rows_method_and_repeats(quality_run):
    _, out, rows, _ = quality_run
    ok, err = rows
    assert ok["status"] == "ok" and ok["arch"] == "toy_mlp" and ok["primary"] == "accuracy"
    acc = ok["metrics"]["accuracy"]
    assert len(acc["values"]) == 2 and acc["min"] <= acc["median"] <= acc["max"]
    assert ok["better"]["accuracy"] == "higher" and ok["better"]["wall_time_s"] == "lower"
    assert ok["metrics"]["wall_time_s"]["median"] > 0 and "loss" in ok["metrics"]
    assert ok["info"]["target"] == {"metric": "accuracy", "value": 0.3, "reached": True}
    assert 0 < ok["metrics"]["time_to_target_s"]["median"] < ok["metrics"]["total_s"]["max"]
    method = ok["method"]
    for key in ("device_name", "torch", "cuda", "bestiary", "plugins", "precision", "batch_size", "warmup",
                "iterations", "repeats", "compile"):
        assert key in method
    assert (method["device"], method["precision"], method["batch_size"], method["repeats"]) == ("cpu", "fp32", 16, 2)
    assert method["plugins"]["toyzoo"] == "local 0" and method["config"]["model"] == {"hidden": 8}
    # the misspelt name is an error row with a close match; the sweep went on
    assert err["status"] == "error" and "toy_mlp" in err["error"] and err["cell"].startswith("toy_mpl/")
    assert [json.loads(line)["cell"] for line in (out / "results.jsonl").read_text().splitlines()] == [
        ok["cell"], err["cell"]]
    run_dir = Path(ok["info"]["run_dir"])
    assert (run_dir / "model").is_dir() and not (run_dir / "checkpoints").exists()


def test_rerun_skips_finished_cells_and_retries_errors(quality_run, toy_host, tmp_path):
    suite, first, rows, _ = quality_run
    out = tmp_path / "rerun"
    shutil.copytree(first, out)
    log: list[str] = []
    again = run_suite(suite, out, echo=log.append)
    assert any("toy_mlp" in line and "skipped" in line for line in log)
    assert any("toy_mpl" in line and "error" in line for line in log)
    assert again[0] == rows[0]  # the finished cell's row is the same row
    assert len(read_rows(out)) == 3  # one new row: the retried error


def test_reports_leaderboard_and_plots(quality_run):
    _, out, rows, _ = quality_run
    text, files = write_reports(rows, out, "toyq")
    assert (out / "leaderboard.md").read_text().strip() == text.strip()
    assert "## quality on blobs" in text and "| 1 | toy_mlp |" in text and "accuracy (higher is better)" in text
    assert "## errors" in text and "unknown architecture 'toy_mpl'" in text
    assert "Method: device" in text
    pngs = [f for f in files if f.suffix == ".png"]
    assert {f.name for f in pngs} == {"quality-blobs-accuracy.png", "quality-blobs-vs-throughput.png"}
    assert all(f.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for f in pngs)


def _plant(src: Path, dst: Path, metric: str, factor: float) -> None:
    dst.mkdir()
    rows = read_rows(src)
    for row in rows:
        if row["status"] == "ok":
            stat = row["metrics"][metric]
            for key in ("median", "min", "max"):
                stat[key] *= factor
    (dst / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))


@pytest.mark.parametrize(("metric", "factor", "regression"), [
    ("accuracy", 0.9, True),      # quality fell by 10 %
    ("accuracy", 1.1, False),     # quality rose
    ("wall_time_s", 1.2, True),   # time rose by 20 %
    ("wall_time_s", 1.03, False),  # within the threshold
    ("train_samples_per_s", 0.8, True),
])
def test_compare_catches_a_planted_regression(quality_run, tmp_path, metric, factor, regression):
    _, out, _, _ = quality_run
    new = tmp_path / f"new-{metric}-{factor}"
    _plant(out, new, metric, factor)
    result = CliRunner().invoke(main, ["bench", "compare", str(out), str(new), "--threshold", "5%"])
    assert result.exit_code == (1 if regression else 0), result.output
    assert ("1 regression past 5.0%" in result.output) == regression


def test_compare_unchanged_passes_and_failing_cell_regresses(quality_run, tmp_path):
    _, out, _, _ = quality_run
    result = CliRunner().invoke(main, ["bench", "compare", str(out), str(out / "results.jsonl"), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["regressions"] == []
    broken = tmp_path / "broken"
    broken.mkdir()
    rows = read_rows(out)
    rows[0].update(status="error", error="RuntimeError: planted")
    del rows[0]["metrics"]
    (broken / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    regressions = compare(out, broken, 0.05)["regressions"]
    assert [(r["metric"], r["new"]) for r in regressions] == [("status", "error")]
    other = tmp_path / "other.jsonl"
    other.write_text("".join(json.dumps({**r, "suite": "another"}) + "\n" for r in rows))
    result = CliRunner().invoke(main, ["bench", "compare", str(out), str(other)])
    assert result.exit_code == 2 and "share no cell" in result.output


def test_threshold_parsing():
    assert parse_threshold("5%") == pytest.approx(0.05) and parse_threshold("0.1") == pytest.approx(0.1)
    for bad in ("five", "150%", "5"):
        with pytest.raises(ConfigError, match="threshold"):
            parse_threshold(bad)


def test_throughput_with_bare_loop(toy_host, suite_file, tmp_path):
    suite = read_suite(suite_file("toyt", THROUGHPUT.replace("{arch}", "toy_cnn")))
    (row,) = run_suite(suite, tmp_path / "out", echo=lambda _: None)
    assert row["status"] == "ok", row.get("error")
    m = {k: v["median"] for k, v in row["metrics"].items()}
    for key in ("train_samples_per_s", "bare_train_samples_per_s", "infer_samples_per_s", "train_step_ms"):
        assert m[key] > 0
    assert m["bare_ratio"] == pytest.approx(m["train_samples_per_s"] / m["bare_train_samples_per_s"])
    # toy_cnn: conv 1->8 (3x3) + BatchNorm + linear 8->3
    assert m["params_m"] == pytest.approx((8 * 9 + 8 + 16 + 8 * 3 + 3) / 1e6)
    assert m["gmacs"] > 8 * 9 * 16 / 1e9
    assert row["better"]["params_m"] is None and row["better"]["bare_ratio"] == "higher"
    assert (row["method"]["warmup"], row["method"]["iterations"]) == (2, 3)
    assert row["info"]["batch_used"] == 16 and row["info"]["oom_halvings"] == 0


def oom_mlp(num_classes: int = 3, in_chans: int = 1, limit: int = 4):  # type: ignore[no-untyped-def]
    """toy_mlp that raises torch.OutOfMemoryError for batches above ``limit``: a simulated CUDA
    out-of-memory (this machine has no GPU to fill), raised where a real one is, in forward."""
    import torch
    import toyzoo

    class OomMLP(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.net = toyzoo.toy_mlp(num_classes=num_classes, in_chans=in_chans)

        def forward(self, x):  # type: ignore[no-untyped-def]
            if x.shape[0] > limit:
                raise torch.OutOfMemoryError(f"CUDA out of memory (simulated for a batch of {x.shape[0]})")
            return self.net(x)

    return OomMLP()


class OomPlugin:
    @hookimpl
    def register_architectures(self, register):  # type: ignore[no-untyped-def]
        register("oom_mlp", oom_mlp, task="image-classification", description="runs out of memory above 4")


def test_out_of_memory_halves_the_batch(toy_host, suite_file, tmp_path):
    assert toy_host.add_plugin(OomPlugin(), "oomzoo").status == "ok"
    suite = read_suite(suite_file("toyoom", THROUGHPUT.replace("{arch}", "oom_mlp")))
    (row,) = run_suite(suite, tmp_path / "out", echo=lambda _: None)
    assert row["status"] == "ok", row.get("error")
    assert (row["info"]["batch_requested"], row["info"]["batch_used"], row["info"]["oom_halvings"]) == (16, 4, 2)
    assert row["method"]["batch_size"] == 4
    assert row["metrics"]["train_samples_per_s"]["median"] > 0


def test_a_failing_cell_is_an_error_row(toy_host, suite_file, tmp_path):
    suite = read_suite(suite_file("toyfail", THROUGHPUT.replace("{arch}", "toy_linear")))
    (row,) = run_suite(suite, tmp_path / "out", echo=lambda _: None)
    assert row["status"] == "error" and "measures image-classification architectures" in row["error"]
    assert "method" in row and (tmp_path / "out" / "results.jsonl").exists()
