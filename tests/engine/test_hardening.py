"""Bad inputs and damaged files: non-finite options, interrupted checkpoints, a corrupt runs index."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import fields
from pathlib import Path

import pytest

from bestiary.engine.config import RunConfig
from bestiary.errors import ConfigError

HERE = Path(__file__).resolve().parent


def bestiary(*args: str, cwd: Path, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    """``python -m bestiary ARGS`` in a fresh process with the toy zoo as a plugin."""
    env = {**os.environ, "BESTIARY_PLUGINS": "toyzoo", "PYTHONPATH": str(HERE), "COLUMNS": "250"}
    return subprocess.run([sys.executable, "-m", "bestiary", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout)


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
                             capture_output=True).returncode == 0 if shutil.which("mount") else False
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
                                  capture_output=True, text=True, timeout=120)
            assert done.returncode == 0, done.stderr
            assert done.stdout.startswith("FAILED"), (how, done.stdout)
            expected = "No space left on device" if how == "tmpfs" else "File too large"
            assert expected in done.stdout, done.stdout
            assert list(disk.iterdir()) == [], (attempt, how, list(disk.iterdir()))
