"""Every failure a user can fix ends a real ``bestiary`` process with one line ``Error: ...`` and
its exit status; a bug shows its traceback. Predict refuses inputs the model cannot take, and
evaluate prints its metrics when it cannot write its report."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

HERE = Path(__file__).resolve().parent


def bestiary(*args: str, cwd: Path, extra_path: Path | None = None, plugins: str = "toyzoo",
             env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """``python -m bestiary ARGS`` in a fresh process with the toy zoo as a plugin."""
    path = os.pathsep.join(p for p in (str(extra_path or ""), str(HERE)) if p)
    full = {k: v for k, v in os.environ.items() if k != "BESTIARY_DEBUG"}
    full.update({"BESTIARY_PLUGINS": plugins, "PYTHONPATH": path, "COLUMNS": "250", **(env or {})})
    return subprocess.run([sys.executable, "-m", "bestiary", *args], cwd=cwd, env=full, capture_output=True,
                          text=True, timeout=300, check=False)


def assert_user_error(done: subprocess.CompletedProcess[str], code: int, *needles: str) -> str:
    """One ``Error:`` line on stderr with every needle, exit ``code``, no traceback."""
    lines = [ln for ln in done.stderr.splitlines() if ln.strip()]
    assert done.returncode == code, (done.returncode, done.stderr)
    assert "Traceback" not in done.stderr, done.stderr
    errors = [ln for ln in lines if ln.startswith("Error: ")]
    assert len(errors) == 1, done.stderr
    for needle in needles:
        assert needle in errors[0], (needle, errors[0])
    return errors[0]


@pytest.fixture(scope="module")
def toy_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("toy")
    done = bestiary("train", "toy_mlp", "--dataset", "blobs", "--max-steps", "3", "--run-dir", str(root / "run"),
                    "--quiet", "--json", cwd=root)
    assert done.returncode == 0, done.stderr
    return root / "run"


# -- config --------------------------------------------------------------------------------------


@pytest.mark.parametrize("table", ["model", "data"])
def test_an_unknown_option_names_it_and_the_accepted_ones(tmp_path: Path, table: str) -> None:
    done = bestiary("train", "toy_mlp", "--dataset", "blobs", "--set", f"{table}.no_such=1", "--max-steps", "1",
                    "--runs-root", str(tmp_path / "runs"), cwd=tmp_path)
    accepted = "dropout" if table == "model" else "classes"
    assert_user_error(done, 2, "'no_such'", accepted, f"--set {table}.NAME=VALUE")


def test_an_image_size_of_zero_is_a_config_error(tmp_path: Path) -> None:
    done = bestiary("train", "toy_mlp", "--dataset", "synthetic_images", "--set", "data.img_size=0",
                    "--max-steps", "1", "--runs-root", str(tmp_path / "runs"), cwd=tmp_path)
    assert_user_error(done, 2, "data.img_size", "at least 1", "got 0")


def test_debug_shows_the_traceback_of_a_user_error_and_keeps_its_exit_status(tmp_path: Path) -> None:
    args = ("train", "toy_mlp", "--dataset", "blobs", "--set", "model.no_such=1", "--runs-root", str(tmp_path))
    for done in (bestiary("--debug", *args, cwd=tmp_path), bestiary(*args, cwd=tmp_path, env={"BESTIARY_DEBUG": "1"})):
        assert done.returncode == 2, done.stderr
        assert "Traceback" in done.stderr and "Error: " in done.stderr and "no_such" in done.stderr


# -- bugs ----------------------------------------------------------------------------------------

BUGGY = textwrap.dedent(
    '''
    from bestiary import hookimpl

    def broken(**options):
        return int("not a number")  # a bug: a plain ValueError from Python, not a typed user error

    @hookimpl
    def register_datasets(register):
        register("broken_blobs", broken, task="image-classification", description="raises a plain ValueError")
    '''
)


def test_a_plain_exception_from_a_plugin_is_shown_as_a_bug_with_its_traceback(tmp_path: Path) -> None:
    (tmp_path / "buggy.py").write_text(BUGGY)
    done = bestiary("train", "toy_mlp", "--dataset", "broken_blobs", "--runs-root", str(tmp_path / "runs"),
                    cwd=tmp_path, extra_path=tmp_path, plugins="toyzoo,buggy")
    assert done.returncode == 1, done.stderr
    assert "Traceback" in done.stderr and "ValueError: invalid literal for int()" in done.stderr
    assert "bestiary: this is a bug" in done.stderr and "report it" in done.stderr
    assert not any(ln.startswith("Error: ") for ln in done.stderr.splitlines())


# -- predict and evaluate ------------------------------------------------------------------------


def test_predict_names_the_expected_and_given_channel_counts(toy_run: Path, tmp_path: Path) -> None:
    np.save(tmp_path / "rgb.npy", np.zeros((2, 3, 4, 4), np.float32))  # the model takes 1 channel
    done = bestiary("predict", str(toy_run), "--input", str(tmp_path / "rgb.npy"), "--output", str(tmp_path / "p.jsonl"),
                    cwd=tmp_path)
    assert_user_error(done, 1, "rgb.npy", "1 channel(s)", "has 3")


@pytest.mark.parametrize("kind", ["nan", "inf", "complex", "text"])
def test_predict_refuses_inputs_that_are_not_finite_real_numbers(toy_run: Path, tmp_path: Path, kind: str) -> None:
    arr: np.ndarray = np.zeros((2, 1, 4, 4), np.float32)
    if kind == "nan":
        arr[1, 0, 2, 3] = np.nan
    elif kind == "inf":
        arr[0, 0, 0, 1] = np.inf
    elif kind == "complex":
        arr = arr.astype(np.complex64) + 1j
    else:
        arr = np.full((2, 1, 4, 4), "x")
    np.save(tmp_path / "bad.npy", arr)
    out = tmp_path / "p.jsonl"
    done = bestiary("predict", str(toy_run), "--input", str(tmp_path / "bad.npy"), "--output", str(out), cwd=tmp_path)
    needle = {"nan": "element [1, 0, 2, 3] is nan", "inf": "element [0, 0, 0, 1] is inf",
              "complex": "complex64", "text": "<U1"}[kind]
    assert_user_error(done, 1, "bad.npy", needle)
    assert not out.exists()


def test_a_damaged_model_file_names_the_file_and_the_remedy(toy_run: Path, tmp_path: Path) -> None:
    import shutil

    run = tmp_path / "run"
    shutil.copytree(toy_run, run)
    weights = run / "model" / "model.safetensors"
    weights.write_bytes(b"\xff" * 64 + weights.read_bytes()[64:])
    np.save(tmp_path / "x.npy", np.zeros((2, 1, 4, 4), np.float32))
    done = bestiary("predict", str(run), "--input", str(tmp_path / "x.npy"), "--output", str(tmp_path / "p.jsonl"),
                    cwd=tmp_path)
    # the folder's manifest catches it first, naming the folder and the file
    assert_user_error(done, 1, str(run / "model"), "model.safetensors", "truncated or modified",
                      "train the model again")
    assert_user_error(bestiary("evaluate", str(run), cwd=tmp_path), 1, str(run / "model"), "model.safetensors")
    # a folder written before manifests existed: safetensors' own error, with the file named
    (run / "model" / "manifest.json").unlink()
    done = bestiary("predict", str(run), "--input", str(tmp_path / "x.npy"), "--output", str(tmp_path / "p.jsonl"),
                    cwd=tmp_path)
    assert_user_error(done, 1, str(weights), "cannot be read", "train the model again")


def test_a_full_disk_names_the_output_path(toy_run: Path, tmp_path: Path) -> None:
    np.save(tmp_path / "x.npy", np.zeros((2, 1, 4, 4), np.float32))
    done = bestiary("predict", str(toy_run), "--input", str(tmp_path / "x.npy"), "--output", "/dev/full", cwd=tmp_path)
    assert_user_error(done, 1, "/dev/full", "No space left on device", "the disk is full")


@pytest.mark.parametrize("command", ["evaluate", "predict"])
@pytest.mark.parametrize("size", ["0", "-3"])
def test_a_batch_size_below_one_is_refused(toy_run: Path, tmp_path: Path, command: str, size: str) -> None:
    np.save(tmp_path / "x.npy", np.zeros((2, 1, 4, 4), np.float32))
    extra = ["--input", str(tmp_path / "x.npy"), "--output", str(tmp_path / "p.jsonl")] if command == "predict" else []
    done = bestiary(command, str(toy_run), *extra, "--batch-size", size, cwd=tmp_path)
    assert done.returncode == 2 and "--batch-size" in done.stderr and "Traceback" not in done.stderr, done.stderr


def test_evaluate_prints_its_metrics_when_it_cannot_write(toy_run: Path, tmp_path: Path) -> None:
    import shutil

    run = tmp_path / "run"
    shutil.copytree(toy_run, run)
    # what a read-only folder does to the writes, also as root: the paths cannot be created or opened
    (run / "reports").write_text("not a folder")
    (run / "evaluations.jsonl").unlink(missing_ok=True)
    (run / "evaluations.jsonl").mkdir()
    done = bestiary("evaluate", str(run), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "accuracy" in done.stdout and "blobs [test]" in done.stdout
    warnings = [ln for ln in done.stderr.splitlines() if ln.startswith("Warning: ")]
    assert any("evaluations.jsonl" in w for w in warnings), done.stderr
    as_json = bestiary("evaluate", str(run), "--json", cwd=tmp_path)
    result = json.loads(as_json.stdout)
    assert result["accuracy"] >= 0 and any("evaluations.jsonl" in w for w in result["warnings"])


# -- forecasting input ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def forecast_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("forecast")
    done = bestiary("train", "naive", "--dataset", "synthetic_series", "--max-steps", "2", "--batch-size", "8",
                    "--run-dir", str(root / "run"), "--quiet", "--json", cwd=root)
    assert done.returncode == 0, done.stderr
    return root / "run"


def test_predict_takes_the_documented_target_only_series(forecast_run: Path, tmp_path: Path) -> None:
    lines = [json.dumps({"target": [float(v) for v in np.sin(np.arange(60) / 3) + 5]}),
             json.dumps({"target": [1.0, None, 2.0] * 20, "item_id": "b", "start": "2024-01-01"})]
    (tmp_path / "in.jsonl").write_text("\n".join(lines) + "\n")
    done = bestiary("predict", str(forecast_run), "--input", str(tmp_path / "in.jsonl"), "--output",
                    str(tmp_path / "out.jsonl"), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    rows = [json.loads(ln) for ln in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert {r["item_id"] for r in rows} == {"0", "b"}
    assert all(np.isfinite(r["mean"]) for r in rows)
    assert rows[0]["timestamp"].startswith("1970-")  # the documented default start


@pytest.mark.parametrize(("target", "needle"), [
    ("[1.0, NaN, 2.0]", "NaN is not a number JSON allows"),
    ("[1.0, Infinity]", "Infinity is not a number"),
    ('[1.0, "3", 2.0]', "target[1] is '3'"),
    ("[1.0, true]", "target[1] is True"),
    ("[[1.0, 2.0]]", "target must be a list of numbers, got [[1.0, 2.0]]"),
    ('"12"', 'target must be a list of numbers, got "12"'),
])
def test_predict_refuses_non_numeric_series_values(forecast_run: Path, tmp_path: Path, target: str, needle: str) -> None:
    (tmp_path / "in.jsonl").write_text('{"target": [1.0, 2.0, 3.0]}\n{"target": ' + target + "}\n")
    out = tmp_path / "out.jsonl"
    done = bestiary("predict", str(forecast_run), "--input", str(tmp_path / "in.jsonl"), "--output", str(out),
                    cwd=tmp_path)
    assert_user_error(done, 1, "in.jsonl, line 2", needle)
    assert not out.exists()


def test_a_damaged_tuning_database_is_a_one_line_error(tmp_path: Path) -> None:
    db = tmp_path / "tune.db"
    db.write_bytes(b"not a database " * 100)
    done = bestiary("tune", "toy_mlp", "--dataset", "blobs", "--storage", f"sqlite:///{db}", "--trials", "1",
                    "--max-steps", "2", "--runs-root", str(tmp_path / "runs"), cwd=tmp_path)
    assert_user_error(done, 1, f"sqlite:///{db}", "file is not a database", "--storage")
