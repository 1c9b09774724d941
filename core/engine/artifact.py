"""Model artefacts: weights as safetensors plus the JSON needed to rebuild the model by name."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch  # artefacts hold torch weights; only runs and load_model import this module
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from ..errors import ModelFileError

FORMAT = "bestiary-model/1"


def save_model(directory: str | Path, state: dict[str, torch.Tensor], meta: dict[str, Any]) -> Path:
    """Write ``model.safetensors`` and ``model.json`` into ``directory``."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    tmp = directory / f".model.safetensors.tmp-{os.getpid()}"
    save_file({k: v.detach().cpu().contiguous().clone() for k, v in state.items()}, str(tmp), metadata={"format": FORMAT})
    os.replace(tmp, directory / "model.safetensors")
    (directory / "model.json").write_text(json.dumps({"format": FORMAT, **meta}, indent=2) + "\n")
    return directory


def read_meta(path: str | Path) -> tuple[Path, dict[str, Any]]:
    """The model directory of ``path`` (a run or model directory) and its ``model.json``."""
    path = Path(path)
    directory = path / "model" if (path / "model" / "model.json").exists() else path
    meta_file = directory / "model.json"
    if not meta_file.exists():
        raise FileNotFoundError(f"{path} holds no model (no model.json); pass a run directory of a finished run or its model/ folder")
    try:
        return directory, json.loads(meta_file.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ModelFileError(f"{meta_file} is not valid JSON ({exc}); export the model again "
                             "(train or --resume the run) or restore the file from a copy") from exc


def load_model(path: str | Path, *, device: str | torch.device = "cpu", host: Any = None) -> torch.nn.Module:
    """Rebuild a saved model through the registry and load its weights.

    :param path: a run directory or its ``model/`` folder.
    :param host: the plugin host to look the architecture up in (default: the process-wide one).
    :return: the model in eval mode.
    """
    from .assembly import lookup  # names a plugin that failed to load when the name is unknown

    directory, meta = read_meta(path)
    entry = lookup("architectures", meta["arch"], host)
    model = entry.build(**meta.get("model_kwargs", {}))
    weights = directory / "model.safetensors"
    try:
        state = load_file(str(weights), device=str(device))
    except SafetensorError as exc:
        raise ModelFileError(f"{weights} is damaged ({exc}); export the model again (train or --resume the run) "
                             "or restore the file from a copy") from exc
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:  # torch's error for missing, unexpected or misshapen tensors
        first = str(exc).strip().splitlines()[-1].strip()
        raise ModelFileError(f"{weights} does not fit architecture {meta['arch']!r} with {directory / 'model.json'}'s "
                             f"options ({first}); export the model again or restore both files from a copy") from exc
    return model.to(device).eval()
