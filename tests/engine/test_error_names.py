"""Errors about a user's files name the file (and the field or option to change), in one line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import bestiary
from bestiary.engine.artifact import load_model, save_model
from bestiary.engine.config import RunConfig
from bestiary.engine.weights import read_state
from bestiary.errors import CheckpointError, ConfigError

HERE = Path(__file__).resolve().parent


@pytest.fixture(autouse=True)
def toy_host(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.syspath_prepend(str(HERE))
    import toyzoo

    host = bestiary.reset_host(bestiary.PluginHost(autoload=False))
    host.add_plugin(toyzoo, "toyzoo")
    yield host
    bestiary.reset_host()


def one_line(exc: pytest.ExceptionInfo[BaseException]) -> str:
    message = str(exc.value)
    assert "\n" not in message
    return message


def test_config_file_that_is_missing_or_not_text(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as err:
        RunConfig.load(tmp_path / "nope.toml")
    assert one_line(err).startswith(f"config file {tmp_path / 'nope.toml'} cannot be read (No such file or directory); "
                                    "pass a TOML file with --config")
    binary = tmp_path / "run.toml"
    binary.write_bytes(b"arch = \"toy_mlp\"\n\xff\xfe")
    with pytest.raises(ConfigError, match=rf"^config file {binary} is not valid TOML: "):
        RunConfig.load(binary)


def test_weights_file_that_is_not_safetensors_or_holds_no_tensors(tmp_path: Path) -> None:
    broken = tmp_path / "w.safetensors"
    broken.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json}      ")
    with pytest.raises(ValueError) as err:
        read_state(broken)
    assert one_line(err).startswith(f"weights file {broken} is not a readable safetensors file (")
    empty = tmp_path / "w.pt"
    torch.save({"epoch": 3}, empty)
    with pytest.raises(ValueError, match=rf"^weights file {empty} holds no state dict of tensors; pass a file of"):
        read_state(empty)


def _model(tmp_path: Path, **kwargs: object) -> Path:
    model = bestiary.build("architectures", "toy_mlp", **kwargs)
    return save_model(tmp_path / "model", model.state_dict(), {"arch": "toyzoo:toy_mlp", "model_kwargs": kwargs})


def test_a_model_folder_that_does_not_fit_its_architecture(tmp_path: Path) -> None:
    directory = _model(tmp_path, hidden=8)
    meta = json.loads((directory / "model.json").read_text())
    state = load_model(directory).state_dict()
    save_model(directory, state, {**meta, "model_kwargs": {"hidden": 32}})  # a consistent folder, wrong weights
    with pytest.raises(CheckpointError) as err:
        load_model(directory)
    assert one_line(err).startswith(f"{directory / 'model.safetensors'} does not fit toyzoo:toy_mlp (Error(s) in loading")
    save_model(directory, state, {**meta, "model_kwargs": {"widht": 8}})
    with pytest.raises(CheckpointError, match=rf"^{directory / 'model.json'}: model_kwargs do not fit toyzoo:toy_mlp \("):
        load_model(directory)


def test_an_old_model_folder_with_a_broken_weight_file_names_it(tmp_path: Path) -> None:
    directory = _model(tmp_path)
    (directory / "manifest.json").unlink()
    (directory / "model.safetensors").write_bytes(b"garbage")
    with pytest.warns(UserWarning, match="no manifest"), pytest.raises(CheckpointError) as err:
        load_model(directory)
    assert one_line(err).startswith(f"{directory / 'model.safetensors'} cannot be read (")
