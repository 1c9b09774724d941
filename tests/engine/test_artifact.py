"""Model folders are sealed like checkpoints, and what a run writes is readable by others."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import bestiary
from bestiary.engine.artifact import load_model
from bestiary.errors import CheckpointError

HERE = Path(__file__).resolve().parent


def train_run(root: Path, umask: int = 0o022) -> Path:
    """A real ``bestiary train`` of the toy zoo in a process with ``umask``; its run directory."""
    env = {**os.environ, "BESTIARY_PLUGINS": "toyzoo", "PYTHONPATH": str(HERE)}
    code = (f"import os, sys; os.umask({umask:#o}); from bestiary.cli import main; "
            "sys.argv = ['bestiary', *sys.argv[1:]]; main()")
    done = subprocess.run([sys.executable, "-c", code, "train", "toy_mlp", "--dataset", "blobs", "--epochs", "1",
                           "--checkpoint-every", "2", "--runs-root", str(root), "--quiet", "--json"],
                          env=env, capture_output=True, text=True, timeout=180, check=False)
    assert done.returncode == 0, done.stderr
    return Path(json.loads(done.stdout)["run_dir"])


@pytest.fixture(autouse=True)
def toy_host(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.syspath_prepend(str(HERE))
    import toyzoo

    host = bestiary.reset_host(bestiary.PluginHost(autoload=False))
    host.add_plugin(toyzoo, "toyzoo")
    yield host
    bestiary.reset_host()


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return train_run(tmp_path_factory.mktemp("runs"))


def test_weights_and_checkpoints_follow_the_umask(run: Path, tmp_path: Path) -> None:
    written = [p for p in run.rglob("*") if p.is_file()]
    weights = [p for p in written if p.suffix == ".safetensors"]
    assert len(weights) >= 3  # the model and two files per checkpoint
    modes = {str(p.relative_to(run)): stat.S_IMODE(p.stat().st_mode) for p in written}
    assert {p: m for p, m in modes.items() if m != 0o644} == {}
    private = train_run(tmp_path, umask=0o077)  # a stricter umask is kept, not widened
    assert {stat.S_IMODE(p.stat().st_mode) for p in private.rglob("*.safetensors")} == {0o600}


def test_model_folder_has_a_manifest_and_loads(run: Path) -> None:
    manifest = json.loads((run / "model" / "manifest.json").read_text())
    assert manifest["format"] == "bestiary-model/1"
    assert sorted(manifest["files"]) == ["model.json", "model.safetensors"]
    assert [p.name for p in run.iterdir() if p.name.startswith(".")] == []  # no temporary folder left
    assert load_model(run)(torch.zeros(2, 1, 4, 4)).shape == (2, 3)


@pytest.mark.parametrize("name", ["model.safetensors", "model.json"])
def test_a_flipped_byte_in_the_model_folder_is_refused(run: Path, tmp_path: Path, name: str) -> None:
    import shutil

    copy = tmp_path / "model"
    shutil.copytree(run / "model", copy)
    data = bytearray((copy / name).read_bytes())
    data[len(data) // 2] ^= 0x01
    (copy / name).write_bytes(bytes(data))
    with pytest.raises(CheckpointError) as err:
        load_model(copy)
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith(f"model {copy} is corrupt: {name} does not match its manifest")
    assert message.endswith("Restore the folder from a copy, or train the model again.")


def test_a_missing_weight_file_is_refused(run: Path, tmp_path: Path) -> None:
    import shutil

    copy = tmp_path / "model"
    shutil.copytree(run / "model", copy)
    (copy / "model.safetensors").unlink()
    with pytest.raises(CheckpointError, match=r"^model .* is missing model\.safetensors\. Restore the folder"):
        load_model(copy)


def test_a_model_folder_without_a_manifest_still_loads_with_a_warning(run: Path, tmp_path: Path) -> None:
    import shutil

    old = tmp_path / "old-run"
    shutil.copytree(run, old)
    (old / "model" / "manifest.json").unlink()  # the layout of runs written before manifests
    with pytest.warns(UserWarning, match=r"has no manifest\.json, so its weights cannot be verified"):
        model = load_model(old)
    assert torch.equal(model(torch.ones(2, 1, 4, 4)), load_model(run)(torch.ones(2, 1, 4, 4)))


def test_saving_again_replaces_the_folder_and_cleans_a_killed_export(run: Path, tmp_path: Path) -> None:
    from bestiary.engine.artifact import read_meta, save_model

    target = tmp_path / "model"
    stale = tmp_path / ".model.tmp-99999"  # what an export killed mid-way leaves
    stale.mkdir()
    (stale / "model.safetensors").write_bytes(b"half")
    _, meta = read_meta(run)
    meta.pop("format")
    weights = dict(load_model(run).state_dict())
    save_model(target, weights, meta)
    save_model(target, {k: v + 1 for k, v in weights.items()}, meta)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]
    assert torch.equal(load_model(target).state_dict()["1.bias"], weights["1.bias"] + 1)
