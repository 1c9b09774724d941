"""The runs index and ``bestiary runs``: listing, lookup, comparison, plots, speed and parallel writers."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

import bestiary
from bestiary.cli import main
from bestiary.engine.index import FILENAME, SCHEMA_VERSION, RunsIndex

HERE = Path(__file__).resolve().parent
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def fake_run(
    root: Path,
    name: str,
    *,
    status: str = "completed",
    arch: str = "toyzoo:toy_mlp",
    lr: float = 0.01,
    best: float | None = 0.5,
    steps: int = 10,
    metrics: list[dict] | None = None,
) -> Path:
    """A run directory with the files the trainer writes, minus the model and checkpoints."""
    path = root / name
    path.mkdir(parents=True)
    config = {
        "config": {
            "arch": arch.partition(":")[2] or arch,
            "dataset": "blobs",
            "lr": lr,
            "epochs": 1,
            "model": {"hidden": 16},
            "runs_root": str(root),
            "run_dir": None,
            "quiet": True,
        },
        "resolved": {
            "arch": arch,
            "dataset": "toyzoo:blobs",
            "strategy": "single:single",
            "task": "image-classification",
            "monitor": "accuracy",
            "mode": "max",
            "total_steps": steps,
        },
        "status": status,
    }
    (path / "config.json").write_text(json.dumps(config))
    if status != "running":
        summary = {
            "status": status,
            "steps": steps,
            "total_steps": steps,
            "wall_time_s": 1.5,
            "final": {"loss": 1.0, "accuracy": best},
            "best": {"metric": "accuracy", "mode": "max", "value": best, "step": steps},
        }
        (path / "summary.json").write_text(json.dumps(summary))
    if metrics:
        (path / "metrics.jsonl").write_text("".join(json.dumps(m) + "\n" for m in metrics))
    return path


def invoke(*args: str, env: dict[str, str] | None = None):
    # Wide enough that rich never folds a run id.
    return CliRunner().invoke(main, list(args), env={"COLUMNS": "250", **(env or {})}, catch_exceptions=False)


# -- the index --------------------------------------------------------------------------------


def test_record_list_and_find(tmp_path: Path) -> None:
    index = RunsIndex(tmp_path)
    for name, arch, status in (
        ("20250101-000001-a_b-x-1111", "toyzoo:toy_mlp", "completed"),
        ("20250101-000002-axb-x-2222", "toyzoo:toy_cnn", "running"),
        ("20250102-000000-c-x-3333", "other:resnet50", "stopped"),
    ):
        index.record(fake_run(tmp_path, name, arch=arch, status=status))

    rows = index.rows()
    assert [r["id"][-4:] for r in rows] == ["3333", "2222", "1111"]  # newest first
    first = rows[-1]
    assert first["path"] == str(tmp_path.resolve() / first["id"])
    assert (first["status"], first["arch"], first["steps"], first["monitor"], first["best"]) == (
        "completed",
        "toyzoo:toy_mlp",
        10,
        "accuracy",
        0.5,
    )
    assert "config" not in first  # listing decodes no JSON
    assert rows[1]["steps"] is None and rows[1]["status"] == "running"

    assert [r["id"][-4:] for r in index.rows(status="running")] == ["2222"]
    assert [r["id"][-4:] for r in index.rows(status=["running", "stopped"])] == ["3333", "2222"]
    assert [r["id"][-4:] for r in index.rows(arch="toy_*")] == ["2222", "1111"]
    assert [r["id"][-4:] for r in index.rows(arch="OTHER:*")] == ["3333"]
    assert [r["id"][-4:] for r in index.rows(limit=1)] == ["3333"]
    assert index.count() == 3

    # "_" is no wildcard: the prefix "20250101-000001-a_b" names one run, not "axb" too.
    assert [r["id"][-4:] for r in index.find("20250101-000001-a_b")] == ["1111"]
    assert len(index.find("20250101")) == 2  # ambiguous prefix
    assert [r["id"][-4:] for r in index.find("2222")] == ["2222"]  # any unique part
    assert index.find("nope") == [] and index.find("") == []
    full = index.get("3333")
    assert (
        full is not None and full["config"]["config"]["lr"] == 0.01 and full["summary"]["status"] == "stopped"
    )
    assert index.get("20250101") is None


def test_record_updates_a_row_and_keeps_created(tmp_path: Path) -> None:
    index = RunsIndex(tmp_path)
    path = fake_run(tmp_path, "myrun", status="running")
    index.record(path)
    (created,) = [r["created"] for r in index.rows()]
    config = json.loads((path / "config.json").read_text())
    (path / "summary.json").write_text(
        json.dumps({"status": "completed", "steps": 7, "best": {"value": 0.9}})
    )
    (path / "config.json").write_text(json.dumps({**config, "status": "completed"}))
    index.record(path)
    (row,) = index.rows()
    assert (row["status"], row["steps"], row["best"], row["created"]) == ("completed", 7, 0.9, created)


def test_rebuild_drops_deleted_runs_and_skips_broken_ones(tmp_path: Path) -> None:
    index = RunsIndex(tmp_path)
    keep, gone = fake_run(tmp_path, "keep"), fake_run(tmp_path, "gone")
    index.record(keep)
    index.record(gone)
    for f in gone.iterdir():
        f.unlink()
    gone.rmdir()
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text("{not json")
    fake_run(tmp_path, "new")
    with sqlite3.connect(index.file) as con:  # as if recorded when the run started
        con.execute("UPDATE runs SET created = 12345 WHERE id = 'keep'")
    assert index.rebuild() == 2
    assert {r["id"]: r["created"] == 12345 for r in index.rows()} == {"keep": True, "new": False}


def test_an_index_of_an_older_schema_is_rebuilt_from_the_run_directories(tmp_path: Path) -> None:
    fake_run(tmp_path, "20250101-000000-toy_mlp-blobs-aaaa")
    con = sqlite3.connect(tmp_path / FILENAME)
    con.executescript(
        "CREATE TABLE runs (id TEXT PRIMARY KEY, path TEXT NOT NULL, status TEXT, config TEXT);"
        "INSERT INTO runs VALUES ('stale', '/nowhere', 'running', '{}');"
    )
    con.close()
    index = RunsIndex(tmp_path)
    assert [(r["id"], r["best"]) for r in index.rows()] == [("20250101-000000-toy_mlp-blobs-aaaa", 0.5)]
    con = sqlite3.connect(tmp_path / FILENAME)
    assert con.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    con.close()


def test_listing_thousands_of_runs_is_fast(tmp_path: Path) -> None:
    n = 2000
    for i in range(n):
        fake_run(
            tmp_path,
            f"20250101-{i // 60:02d}{i % 60:02d}00-toy_mlp-blobs-{i:04x}",
            best=i / n,
            status="completed" if i % 3 else "stopped",
        )
    index = RunsIndex(tmp_path)
    assert index.rebuild() == n

    start = time.perf_counter()
    rows = index.rows()
    elapsed = time.perf_counter() - start
    assert len(rows) == n and rows[0]["id"].endswith(f"{n - 1:04x}")
    # Typically ~20 ms; the bound leaves room for a loaded shared machine.
    assert elapsed < 1.0, f"listing {n} runs took {elapsed:.2f}s"
    start = time.perf_counter()
    assert len(index.rows(status="stopped", arch="toy_*")) == len([i for i in range(n) if i % 3 == 0])
    assert time.perf_counter() - start < 1.0

    # The command too: JSON, and the table (plain columns above a few hundred rows).
    for args in (["--json"], []):
        start = time.perf_counter()
        result = invoke("runs", "list", "--root", str(tmp_path), *args)
        elapsed = time.perf_counter() - start
        assert result.exit_code == 0, result.output
        assert elapsed < 5.0, f"`bestiary runs list {' '.join(args)}` of {n} runs took {elapsed:.2f}s"
    assert len(json.loads(invoke("runs", "list", "--root", str(tmp_path), "--json").output)) == n
    assert len(result.output.splitlines()) == n + 1


WRITER = textwrap.dedent(
    """
    import json, sys, time
    from pathlib import Path
    from bestiary.engine.index import RunsIndex

    root, worker, count = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
    start = Path(sys.argv[4])
    while not start.exists():  # all writers begin together
        time.sleep(0.001)
    for i in range(count):
        path = root / f"20250101-000000-w{worker}-{i:04d}"
        path.mkdir()
        config = {"config": {"arch": "toy_mlp", "dataset": "blobs", "lr": i}, "status": "running"}
        (path / "config.json").write_text(json.dumps(config))
        RunsIndex(root).record(path)  # as the trainer does: at the start ...
        (path / "summary.json").write_text(json.dumps({"status": "completed", "steps": i}))
        RunsIndex(root).record(path)  # ... and at the end of a run
    """
)

READER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from bestiary.engine.index import RunsIndex

    root, start, stop = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])
    while not start.exists():
        time.sleep(0.001)
    reads = 0
    while not stop.exists():
        RunsIndex(root).rows()
        reads += 1
        time.sleep(0.005)
    print(reads)
    """
)


def test_parallel_writers_lose_no_run(tmp_path: Path) -> None:
    root, start, stop = tmp_path / "runs", tmp_path / "start", tmp_path / "stop"
    root.mkdir()
    workers, count = 4, 40
    writers = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, str(root), str(w), str(count), str(start)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for w in range(workers)
    ]
    reader = subprocess.Popen(
        [sys.executable, "-c", READER, str(root), str(start), str(stop)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    time.sleep(0.3)  # let the interpreters start, so the writes really overlap
    start.touch()
    try:
        results = [p.communicate(timeout=120) for p in writers]
    finally:
        stop.touch()
        _, read_err = reader.communicate(timeout=60)
    for p, (_, err) in zip(writers, results):
        assert p.returncode == 0, err
        assert "locked" not in err and "busy" not in err
    assert reader.returncode == 0, read_err
    rows = RunsIndex(root).rows()
    assert len(rows) == workers * count
    assert {r["status"] for r in rows} == {"completed"}
    assert sorted(r["id"] for r in rows) == sorted(p.name for p in root.iterdir() if p.is_dir())


# -- the command, on fake runs ----------------------------------------------------------------


def test_unknown_or_ambiguous_run_is_a_usage_error(tmp_path: Path) -> None:
    fake_run(tmp_path, "20250101-000000-toy_mlp-blobs-aaaa")
    fake_run(tmp_path, "20250101-000001-toy_mlp-blobs-bbbb")
    RunsIndex(tmp_path).rebuild()
    result = CliRunner().invoke(main, ["runs", "show", "nope", "--root", str(tmp_path)])
    assert result.exit_code == 2
    assert "no run 'nope'" in result.output and "bestiary runs list" in result.output
    assert "Usage:" not in result.output
    result = CliRunner().invoke(main, ["runs", "show", "20250101", "--root", str(tmp_path)])
    assert result.exit_code == 2 and "ambiguous" in result.output and "aaaa" in result.output
    result = CliRunner().invoke(
        main, ["runs", "compare", "aaaa", "bbbb", "--metric", "f1", "--root", str(tmp_path)]
    )
    assert result.exit_code == 2 and "'f1'" in result.output and "accuracy" in result.output


def test_root_from_group_subcommand_or_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BESTIARY_RUNS_ROOT", raising=False)
    a, b = tmp_path / "a", tmp_path / "b"
    fake_run(a, "run-in-a")
    fake_run(b, "run-in-b")

    # No index yet: listing builds it from the run directories.
    def ids(result) -> list[str]:
        return [r["id"] for r in json.loads(result.output)]

    assert ids(invoke("runs", "--root", str(a), "list", "--json")) == ["run-in-a"]
    assert ids(invoke("runs", "--root", str(a), "list", "--root", str(b), "--json")) == ["run-in-b"]
    assert ids(invoke("runs", "list", "--json", env={"BESTIARY_RUNS_ROOT": str(b)})) == ["run-in-b"]
    monkeypatch.chdir(tmp_path)
    assert invoke("runs", "list", "--json").output.strip() == "[]"  # ./runs does not exist
    result = invoke("runs", "list")
    assert result.exit_code == 0 and "no runs" in result.output
    assert not (tmp_path / "runs").exists()  # listing creates nothing
    result = invoke("runs", "rebuild", "--root", str(a), "--json")
    assert json.loads(result.output)["runs"] == 1


def test_show_and_compare_a_running_run_from_its_metrics(tmp_path: Path) -> None:
    records = [
        {"step": s, "split": split, "loss": 2.0 / s, **({"accuracy": acc} if split == "validation" else {})}
        for s, split, acc in (
            (5, "train", None),
            (5, "validation", 0.6),
            (10, "train", None),
            (10, "validation", 0.55),
        )
    ]
    fake_run(tmp_path, "live", status="running", metrics=records)
    fake_run(tmp_path, "done", lr=0.1, best=0.7)
    show = json.loads(invoke("runs", "show", "live", "--root", str(tmp_path), "--json").output)
    assert show["status"] == "running" and show["summary"] == {}
    assert (
        show["last_metrics"]["validation"]["accuracy"] == 0.55 and show["last_metrics"]["train"]["step"] == 10
    )
    out = json.loads(invoke("runs", "compare", "live", "done", "--root", str(tmp_path), "--json").output)
    live, done = out["runs"]
    assert out["metric"] == "accuracy" and out["mode"] == "max" and out["differing"] == ["lr"]
    assert live["best"] == {"value": 0.6, "step": 5} and live["final"] == {"loss": 0.2, "accuracy": 0.55}
    assert done["best"] == {"value": 0.7, "step": 10}
    out = json.loads(
        invoke("runs", "compare", "live", "--metric", "loss", "--root", str(tmp_path), "--json").output
    )
    assert out["mode"] == "min" and out["runs"][0]["best"] == {"value": 0.2, "step": 10}


# -- real runs --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[dict]]:
    """Two real runs of the toy zoo that differ in learning rate."""
    sys.path.insert(0, str(HERE))
    import toyzoo

    from bestiary.engine.config import RunConfig
    from bestiary.engine.trainer import train

    root = tmp_path_factory.mktemp("runs")
    previous = bestiary.get_host()
    # Only the built-ins the runs need: fewer imports, and no event files to wait for.
    host = bestiary.reset_host(bestiary.PluginHost(autoload=False, disabled=["tensorboard"]))
    host.add_plugin(toyzoo, "toyzoo")
    try:
        summaries = [
            train(
                RunConfig(
                    arch="toy_mlp",
                    dataset="blobs",
                    epochs=2,
                    batch_size=16,
                    lr=lr,
                    log_every=2,
                    runs_root=str(root),
                    quiet=True,
                )
            )
            for lr in (0.01, 0.05)
        ]
    finally:
        bestiary.reset_host(previous)
        sys.path.remove(str(HERE))
    return root, summaries


CLI_SCRIPT = textwrap.dedent(
    """
    import json, sys
    from bestiary.cli import main

    for args in json.loads(sys.argv[1]):
        try:
            main(args, standalone_mode=False)
        finally:
            sys.stdout.flush()
    print("TORCH=" + str("torch" in sys.modules))
    """
)


def test_list_show_compare_real_runs_in_a_fresh_process(
    trained: tuple[Path, list[dict]], tmp_path: Path
) -> None:
    root, summaries = trained
    ids = [Path(s["run_dir"]).name for s in summaries]
    png = tmp_path / "plots" / "accuracy.png"
    result = subprocess.run(
        [sys.executable, "-m", "bestiary", "runs", "list", "--root", str(root), "--json"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout)
    assert sorted(r["id"] for r in rows) == sorted(ids)
    for row in rows:
        summary = summaries[ids.index(row["id"])]
        assert (row["status"], row["arch"], row["dataset"], row["steps"]) == (
            "completed",
            "toyzoo:toy_mlp",
            "toyzoo:blobs",
            summary["steps"],
        )
        assert row["best"] == summary["best"]["value"] and row["monitor"] == "accuracy"

    # list, show and compare --plot in one fresh process: none of them may import torch.
    commands = [
        ["runs", "list", "--root", str(root)],
        ["runs", "show", ids[0], "--root", str(root)],
        ["runs", "compare", *ids, "--root", str(root), "--plot", str(png)],
    ]
    result = subprocess.run(
        [sys.executable, "-c", CLI_SCRIPT, json.dumps(commands)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
        env={**os.environ, "COLUMNS": "250"},
    )
    assert result.returncode == 0, result.stderr
    assert "TORCH=False" in result.stdout
    assert all(i in result.stdout for i in ids)
    assert png.read_bytes().startswith(PNG_SIGNATURE) and png.stat().st_size > 1000


def test_show_real_run(trained: tuple[Path, list[dict]]) -> None:
    root, summaries = trained
    path = Path(summaries[1]["run_dir"])
    by_id = json.loads(invoke("runs", "show", path.name[:-2], "--root", str(root), "--json").output)
    by_path = json.loads(invoke("runs", "show", str(path), "--root", "/nonexistent", "--json").output)
    assert by_id == by_path
    assert by_id["id"] == path.name and by_id["config"]["lr"] == 0.05
    assert by_id["resolved"]["arch"] == "toyzoo:toy_mlp" and by_id["resolved"]["monitor"] == "accuracy"
    assert by_id["summary"]["best"] == summaries[1]["best"]
    assert by_id["last_metrics"]["validation"]["accuracy"] == summaries[1]["final"]["accuracy"]
    assert by_id["last_metrics"]["train"]["step"] == summaries[1]["steps"]
    table = invoke("runs", "show", path.name, "--root", str(root))
    assert table.exit_code == 0
    for text in ("config", "resolved", "summary", "last metrics", "toyzoo:toy_mlp", "0.05"):
        assert text in table.output


def test_compare_real_runs_with_plots(trained: tuple[Path, list[dict]], tmp_path: Path) -> None:
    root, summaries = trained
    ids = [Path(s["run_dir"]).name for s in summaries]
    png = tmp_path / "loss.png"
    result = invoke(
        "runs", "compare", *ids, "--metric", "loss", "--plot", str(png), "--root", str(root), "--json"
    )
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    assert out["metric"] == "loss" and out["mode"] == "min" and out["plot"] == str(png)
    assert out["differing"] == ["lr"]  # runs_root, run_dir, quiet are no parameters
    assert [r["parameters"]["lr"] for r in out["runs"]] == [0.01, 0.05]
    assert [r["parameters"]["arch"] for r in out["runs"]] == ["toyzoo:toy_mlp"] * 2
    for run, summary in zip(out["runs"], summaries):
        assert run["final"] == summary["final"]
        assert run["best"]["value"] == min(  # best validation loss over the run's evaluations
            json.loads(line)["loss"]
            for line in (Path(summary["run_dir"]) / "metrics.jsonl").read_text().splitlines()
            if json.loads(line)["split"] == "validation"
        )
    assert png.read_bytes().startswith(PNG_SIGNATURE) and png.stat().st_size > 1000

    table = invoke("runs", "compare", *ids, "--root", str(root))
    assert table.exit_code == 0
    lines = table.output.splitlines()
    assert all(i in table.output for i in ids)
    assert any(line.split("│")[1].strip() == "lr" for line in lines if line.count("│") > 2)
    assert any("best accuracy" in line for line in lines) and any("final loss" in line for line in lines)
    assert not any("runs_root" in line for line in lines)


def test_list_and_compare_name_the_split_and_rank_only_alike_runs(tmp_path: Path) -> None:
    """The best value is a validation figure (the benchmarks show test figures): the headers say
    so. A loss is each model's own objective: no run is marked best on it across architectures."""
    def logged(loss: float) -> list[dict]:
        return [{"split": "validation", "step": 10, "epoch": 1, "loss": loss, "accuracy": 0.5, "time": 1.0}]

    fake_run(tmp_path, "20250101-000000-toy_mlp-blobs-aaaa", best=0.5, metrics=logged(0.9))
    fake_run(tmp_path, "20250101-000001-toy_cnn-blobs-bbbb", arch="toyzoo:toy_cnn", best=0.7, metrics=logged(0.4))
    RunsIndex(tmp_path).rebuild()
    listed = invoke("runs", "list", "--root", str(tmp_path))
    assert "best (validation)" in listed.output and "accuracy 0.7" in listed.output
    from bestiary.cli import runs as runs_cli
    from bestiary.engine.compare import compare, load

    compared = invoke("runs", "compare", "aaaa", "bbbb", "--root", str(tmp_path))
    assert "best accuracy (validation)" in compared.output and "final loss (validation)" in compared.output
    index = RunsIndex(tmp_path)

    def green(metric: str) -> list[bool]:
        comparison = compare(load(["aaaa", "bbbb"], index), metric)
        assert all(b.get("value") is not None for b in comparison.best)
        return [str(runs_cli._best_cell(b, comparison).style) == "green" for b in comparison.best]

    assert green("accuracy") == [False, True]  # one task: the best of the two is marked
    assert green("loss") == [False, False]  # two architectures' own losses: none is marked
