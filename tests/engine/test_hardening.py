"""Bad inputs and damaged files: non-finite options, interrupted checkpoints, a corrupt runs index."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import fields
from pathlib import Path

import pytest

from bestiary.engine.config import RunConfig
from bestiary.engine.rundir import RunDir
from bestiary.errors import ConfigError

HERE = Path(__file__).resolve().parent


def bestiary(*args: str, cwd: Path, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    """``python -m bestiary ARGS`` in a fresh process with the toy zoo as a plugin."""
    env = {**os.environ, "BESTIARY_PLUGINS": "toyzoo", "PYTHONPATH": str(HERE), "COLUMNS": "250"}
    return subprocess.run([sys.executable, "-m", "bestiary", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout, check=False)


def train(root: Path, *args: str) -> Path:
    """A short real training run under ``root``; its run directory."""
    done = bestiary("train", "toy_mlp", "--dataset", "blobs", "--runs-root", str(root), "--quiet", "--json",
                    *args, cwd=root.parent)
    assert done.returncode == 0, done.stderr
    return Path(json.loads(done.stdout)["run_dir"])


# -- non-finite options -------------------------------------------------------------------------


FLOAT_FIELDS = [f.name for f in fields(RunConfig) if str(f.type).replace(" | None", "") == "float"]


@pytest.mark.parametrize("name", FLOAT_FIELDS)
@pytest.mark.parametrize("value", ["nan", "inf", "-inf"])
def test_non_finite_float_fields_are_refused_from_flags_set_and_toml(tmp_path: Path, name: str, value: str) -> None:
    base = {"arch": "toy_mlp", "dataset": "blobs"}
    with pytest.raises(ConfigError, match=f"^config field '{name}': must be a finite number, got -?(nan|inf)$"):
        RunConfig.load(None, {**base, name: float(value)})
    with pytest.raises(ConfigError, match=f"'{name}': must be a finite number"):
        RunConfig.load(None, base, [f"{name}={value}"])
    toml = tmp_path / "run.toml"
    toml.write_text(f'arch = "toy_mlp"\ndataset = "blobs"\n{name} = {value}\n')  # TOML has nan and inf literals
    with pytest.raises(ConfigError, match=f"'{name}': must be a finite number"):
        RunConfig.load(toml)


def test_non_finite_options_on_the_command_line_are_one_line_errors(tmp_path: Path) -> None:
    assert {"lr", "weight_decay", "momentum", "gamma"} <= set(FLOAT_FIELDS)
    for args, name in ((["--lr", "inf"], "lr"), (["--weight-decay", "nan"], "weight_decay"),
                       (["--set", "momentum=nan"], "momentum")):
        done = bestiary("train", "toy_mlp", "--dataset", "blobs", "--runs-root", "runs", *args, cwd=tmp_path)
        assert done.returncode == 2, done.stderr
        assert done.stderr.splitlines()[-1].startswith(f"Error: config field '{name}': must be a finite number")
        assert "Traceback" not in done.stderr
    assert not (tmp_path / "runs").exists()  # refused before any run directory


# -- interrupted checkpoints --------------------------------------------------------------------


def test_resume_removes_what_a_killed_checkpoint_writer_left(tmp_path: Path) -> None:
    root = tmp_path / "runs"
    run = train(root, "--epochs", "2", "--max-steps", "6", "--checkpoint-every", "2", "--keep-checkpoints", "5")
    ckpts = run / "checkpoints"
    (run / "summary.json").unlink()  # as if killed before the end
    # Killed while writing step 6: a half-written temporary folder (as `checkpoint.save` makes it).
    stale = ckpts / ".step-00000006.tmp-4194304"
    (ckpts / "step-00000006").rename(stale)
    (stale / "manifest.json").unlink()
    # Killed (earlier) while replacing step 4: the complete old one moved aside, the new one not
    # yet in place.
    shutil.copytree(ckpts / "step-00000004", ckpts / ".step-00000004.tmp-4194305")
    (ckpts / "step-00000004").rename(ckpts / ".step-00000004.old-4194305")
    before = (ckpts / ".step-00000004.old-4194305" / "model.safetensors").read_bytes()
    # Looking at a run is no resume: a writer may be at work, so its temporary folders stay.
    assert RunDir(run).latest_checkpoint() == ckpts / "step-00000002"
    assert stale.exists() and (ckpts / ".step-00000004.tmp-4194305").exists()

    done = bestiary("train", "--resume", str(run), "--quiet", "--json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["steps"] == 6
    names = sorted(p.name for p in ckpts.iterdir())
    assert names == ["step-00000002", "step-00000004", "step-00000006"], names
    assert (ckpts / "step-00000004" / "model.safetensors").read_bytes() == before  # put back, not lost


@contextmanager
def small_disk(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    """A folder on a real 256 KiB tmpfs when this process may mount one (root): writes past it
    fail with ENOSPC. Otherwise a plain folder, and the writer runs under RLIMIT_FSIZE, where
    writes past 256 KiB fail with EFBIG: a real full-file error from the kernel all the same."""
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(disk)],
                             capture_output=True, check=False).returncode == 0 if shutil.which("mount") else False
    try:
        yield disk, "tmpfs" if mounted else "rlimit"
    finally:
        if mounted:
            subprocess.run(["umount", str(disk)], check=True)


WRITER = textwrap.dedent("""
    import resource, signal, sys, torch
    from bestiary.engine import checkpoint
    if sys.argv[2] == "rlimit":
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # EFBIG instead of a kill
        resource.setrlimit(resource.RLIMIT_FSIZE, (256 * 1024, 256 * 1024))
    try:
        checkpoint.save(sys.argv[1], model={"w": torch.zeros(1 << 20)}, optimizer={}, extra={"step": 1})
    except Exception as exc:
        print("FAILED", type(exc).__name__, exc)
""")


def test_a_checkpoint_write_that_fails_for_a_full_disk_leaves_no_temporary_folder(tmp_path: Path) -> None:
    with small_disk(tmp_path) as (disk, how):
        for attempt in range(3):  # each retry used to add another folder
            done = subprocess.run([sys.executable, "-c", WRITER, str(disk / "step-00000001"), how],
                                  capture_output=True, text=True, timeout=120, check=False)
            assert done.returncode == 0, done.stderr
            assert done.stdout.startswith("FAILED"), (how, done.stdout)
            expected = "No space left on device" if how == "tmpfs" else "File too large"
            assert expected in done.stdout, done.stdout
            assert list(disk.iterdir()) == [], (attempt, how, list(disk.iterdir()))


# -- a damaged runs index -----------------------------------------------------------------------


def runs_json(root: Path, *args: str) -> list[dict]:
    done = bestiary("runs", "list", "--root", str(root), "--json", *args, cwd=root.parent)
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    return json.loads(done.stdout)


def garbage(file: Path) -> None:
    for suffix in ("-wal", "-shm"):
        Path(f"{file}{suffix}").unlink(missing_ok=True)
    file.write_bytes(os.urandom(8192))


def truncated(file: Path) -> None:
    try:
        with sqlite3.connect(file) as con:  # fold the WAL in, so that the file holds every page
            con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    except sqlite3.DatabaseError:
        pass  # damaged already
    data = file.read_bytes()
    file.write_bytes(data[: len(data) // 2 + 100])


def table_dropped(file: Path) -> None:
    with sqlite3.connect(file) as con:
        con.execute("DROP TABLE IF EXISTS runs")


DAMAGES = {"garbage": garbage, "truncated": truncated, "table_dropped": table_dropped}


@pytest.fixture(scope="module")
def one_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A runs folder with one real completed run and its index (copy it before changing it)."""
    root = tmp_path_factory.mktemp("indexed") / "runs"
    train(root, "--max-steps", "2")
    assert (root / "runs.sqlite").exists()
    return root


@pytest.mark.parametrize("damage", sorted(DAMAGES))
def test_a_damaged_index_blocks_neither_training_nor_listing_and_rebuild_repairs_it(
    one_run: Path, tmp_path: Path, damage: str
) -> None:
    root = tmp_path / "runs"
    shutil.copytree(one_run, root)
    (first,) = [p.name for p in root.iterdir() if p.is_dir()]
    index = root / "runs.sqlite"

    DAMAGES[damage](index)
    listed = runs_json(root)  # read from the run folders while the index is damaged
    assert [(r["id"], r["status"]) for r in listed] == [(first, "completed")]

    DAMAGES[damage](index)
    second = train(root, "--max-steps", "2").name  # records itself by re-creating the index
    rows = {r["id"]: r["status"] for r in runs_json(root)}
    assert rows == {first: "completed", second: "completed"}

    DAMAGES[damage](index)
    done = bestiary("runs", "rebuild", "--root", str(root), "--json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["runs"] == 2
    with sqlite3.connect(index) as con:  # a sound file again, not just a fallback
        assert con.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        assert sorted(con.execute("SELECT id, status FROM runs")) == sorted(rows.items())


LOCKER = textwrap.dedent("""
    import sqlite3, sys, time
    con = sqlite3.connect(sys.argv[1], isolation_level=None)
    con.execute("BEGIN EXCLUSIVE")
    print("locked", flush=True)
    time.sleep(600)
""")


def test_rebuild_replaces_an_index_another_process_keeps_locked(one_run: Path, tmp_path: Path) -> None:
    root = tmp_path / "runs"
    shutil.copytree(one_run, root)
    (root / "runs.sqlite").unlink()
    fake = root / "copied-in-run"
    shutil.copytree(next(p for p in one_run.iterdir() if p.is_dir()), fake)
    with sqlite3.connect(root / "runs.sqlite") as con:  # an index in the old rollback mode, so the lock blocks readers too
        con.execute("CREATE TABLE runs (id TEXT)")
    locker = subprocess.Popen([sys.executable, "-c", LOCKER, str(root / "runs.sqlite")], stdout=subprocess.PIPE,
                              text=True)
    try:
        assert locker.stdout is not None and locker.stdout.readline().strip() == "locked"
        done = bestiary("runs", "rebuild", "--root", str(root), "--json", cwd=tmp_path, timeout=100)
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout)["runs"] == 2
        assert len(runs_json(root)) == 2
    finally:
        locker.kill()
        locker.wait()


@contextmanager
def read_only(folder: Path) -> Iterator[str]:
    """Make ``folder`` read-only for this test's processes: a read-only remount of a tmpfs that
    holds a copy when root may mount (root ignores file modes), else ``chmod -w``."""
    if os.geteuid() == 0 and shutil.which("mount"):
        copy = folder.with_name(folder.name + "-copy")
        folder.rename(copy)
        folder.mkdir()
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", str(folder)], check=True)
        try:
            shutil.copytree(copy, folder, dirs_exist_ok=True)
            subprocess.run(["mount", "-o", "remount,ro", str(folder)], check=True)
            yield "read-only tmpfs"
        finally:
            subprocess.run(["umount", str(folder)], check=True)
        return
    modes = {p: p.stat().st_mode for p in [folder, *folder.rglob("*")]}
    for p, mode in modes.items():
        p.chmod(mode & ~0o222)
    try:
        yield "chmod"
    finally:
        for p, mode in modes.items():
            p.chmod(mode)


@pytest.mark.parametrize("index_state", ["written", "missing", "garbage"])
def test_list_and_show_work_in_a_read_only_runs_folder(one_run: Path, tmp_path: Path, index_state: str) -> None:
    root = tmp_path / "runs"
    shutil.copytree(one_run, root)
    (run,) = [p.name for p in root.iterdir() if p.is_dir()]
    if index_state == "missing":
        (root / "runs.sqlite").unlink()
    elif index_state == "garbage":
        garbage(root / "runs.sqlite")
    with read_only(root) as how:
        with pytest.raises(OSError):
            (root / "probe").write_text("x")  # really read-only
        assert [(r["id"], r["status"]) for r in runs_json(root)] == [(run, "completed")], how
        shown = bestiary("runs", "show", run[-4:], "--root", str(root), "--json", cwd=tmp_path)
        assert shown.returncode == 0, shown.stderr
        assert json.loads(shown.stdout)["id"] == run
        rebuilt = bestiary("runs", "rebuild", "--root", str(root), cwd=tmp_path)
        assert rebuilt.returncode == 1 and "Traceback" not in rebuilt.stderr
        assert rebuilt.stderr.strip().splitlines()[-1].startswith("Error: cannot write the runs index")


def test_an_index_damaged_while_a_run_trains_still_records_the_run_completed(tmp_path: Path) -> None:
    root = tmp_path / "runs"
    env = {**os.environ, "BESTIARY_PLUGINS": "toyzoo", "PYTHONPATH": str(HERE)}
    proc = subprocess.Popen([sys.executable, "-m", "bestiary", "train", "toy_mlp", "--dataset", "blobs",
                             "--epochs", "400", "--runs-root", str(root), "--quiet", "--json"],
                            cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        index = root / "runs.sqlite"
        deadline = time.monotonic() + 120
        while not (index.exists() and list(root.glob("*/config.json"))) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert proc.poll() is None, "the run ended before the index could be damaged; give it more epochs"
        garbage(index)  # while the run trains
        out, err = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    summary = json.loads(out)
    assert summary["status"] == "completed"
    (row,) = runs_json(root)
    assert (row["id"], row["status"], row["steps"]) == (Path(summary["run_dir"]).name, "completed", summary["steps"])
