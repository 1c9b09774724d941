"""Model artefacts: weights as safetensors plus the JSON needed to rebuild the model by name.

A model folder is sealed like a checkpoint (see :func:`bestiary.engine.checkpoint.commit`): written
to a temporary folder, given ``manifest.json`` (size and SHA-256 of each file), synced, then
renamed into place; :func:`load_model` verifies it before reading anything.
"""

from __future__ import annotations

import json
import os
import shutil
import warnings
from pathlib import Path
from typing import Any

import torch  # artefacts hold torch weights; only runs and load_model import this module
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from ..errors import ModelFileError
from .checkpoint import commit, verify

FORMAT = "bestiary-model/1"
FILES = ("model.safetensors", "model.json")
#: What to do about a model folder that fails verification.
REMEDY = "Restore the folder from a copy, or train the model again."


def save_model(directory: str | Path, state: dict[str, torch.Tensor], meta: dict[str, Any]) -> Path:
    """Write ``model.safetensors``, ``model.json`` and their ``manifest.json`` as the folder
    ``directory``, replacing one that is there only once the new one is complete."""
    directory = Path(directory)
    directory.parent.mkdir(parents=True, exist_ok=True)
    for kind in ("tmp", "old"):  # left by an export that was killed (names as checkpoint.commit gives them)
        for stale in directory.parent.glob(f".{directory.name}.{kind}-*"):
            shutil.rmtree(stale, ignore_errors=True)
    tmp = directory.with_name(f".{directory.name}.tmp-{os.getpid()}")
    tmp.mkdir()
    try:
        save_file({k: v.detach().cpu().contiguous().clone() for k, v in state.items()}, str(tmp / "model.safetensors"),
                  metadata={"format": FORMAT})
        (tmp / "model.json").write_text(json.dumps({"format": FORMAT, **meta}, indent=2) + "\n")
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)  # a full disk or a bad value: leave no half-written folder
        raise
    return commit(tmp, directory, FILES, FORMAT)


def model_dir(path: str | Path) -> Path:
    """The model folder of ``path``: its ``model/`` when ``path`` is a run directory, else ``path``."""
    path = Path(path)
    return path / "model" if (path / "model" / "model.json").exists() else path


def read_meta(path: str | Path) -> tuple[Path, dict[str, Any]]:
    """The model directory of ``path`` (a run or model directory) and its ``model.json``."""
    directory = model_dir(path)
    meta_file = directory / "model.json"
    if not meta_file.exists():
        raise FileNotFoundError(f"{path} holds no model (no model.json); pass a run directory of a finished run or its model/ folder")
    try:
        meta = json.loads(meta_file.read_text(encoding="utf-8"))
        if not isinstance(meta, dict) or not isinstance(meta.get("arch"), str):
            raise ValueError("no 'arch' name")
    except (ValueError, UnicodeDecodeError) as exc:
        raise ModelFileError(f"{meta_file} is not a model description ({exc}). {REMEDY}") from exc
    return directory, meta


def verify_model(path: str | Path) -> Path:
    """Check the model folder of ``path`` against its manifest; return the folder.

    :raises ModelFileError: a file is missing, truncated or modified.
    """
    directory = model_dir(path)
    if (directory / "manifest.json").exists():
        verify(directory, fmt=FORMAT, required=FILES, what="model", remedy=REMEDY)
    elif (directory / "model.json").exists():
        # written before model folders had a manifest: existing runs keep loading, unchecked
        warnings.warn(f"{directory} has no manifest.json, so its weights cannot be verified; "
                      "save the model again (train it, or bestiary.engine.artifact.save_model) to add one",
                      UserWarning, stacklevel=2)
    return directory


def load_model(path: str | Path, *, device: str | torch.device = "cpu", host: Any = None) -> torch.nn.Module:
    """Rebuild a saved model through the registry and load its weights, after verifying them.

    :param path: a run directory or its ``model/`` folder.
    :param host: the plugin host to look the architecture up in (default: the process-wide one).
    :return: the model in eval mode.
    :raises CheckpointError: the folder does not match its manifest.
    """
    from .assembly import lookup  # names a plugin that failed to load when the name is unknown

    verify_model(path)
    directory, meta = read_meta(path)
    entry = lookup("architectures", meta["arch"], host)
    try:
        model = entry.build(**meta.get("model_kwargs", {}))
    except TypeError as exc:  # the architecture's options changed since the model was saved
        raise ModelFileError(f"{directory / 'model.json'}: model_kwargs do not fit {meta['arch']} ({exc}); "
                              "load it with the plugin version that trained it") from exc
    weights = directory / "model.safetensors"
    try:
        state = load_file(str(weights), device=str(device))
    except (SafetensorError, OSError) as exc:  # safetensors' own error names no file
        raise ModelFileError(f"{weights} cannot be read ({exc}). {REMEDY}") from exc
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        first = str(exc).splitlines()[0]
        raise ModelFileError(f"{weights} does not fit {meta['arch']} ({first}); load it with the plugin version "
                              "that trained it") from exc
    return model.to(device).eval()
