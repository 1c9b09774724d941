"""Pretrained weights from a local file: safetensors, or a torch/timm checkpoint read with
``weights_only=True`` (nothing arbitrary is unpickled)."""

from __future__ import annotations

import logging
from pathlib import Path

import torch  # loads tensors into a model; only runs import this module

from ..errors import ModelFileError

log = logging.getLogger("bestiary")
_NESTED = ("state_dict", "model", "model_state_dict", "module", "state_dict_ema")


def read_state(path: str | Path) -> dict[str, torch.Tensor]:
    """The state dict in ``path``, unwrapped from the usual checkpoint containers."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"weights file {path} does not exist; pass a local .safetensors file or a torch checkpoint")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        try:
            state: object = load_file(str(path))
        except Exception as exc:  # safetensors' own error names no file
            raise ValueError(f"weights file {path} is not a readable safetensors file ({exc}); "
                             "pass the file again, downloaded or copied completely") from exc
    else:
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:
            raise ModelFileError(f"{path} is not a checkpoint of plain tensors that can be read safely ({exc})") from exc
    for key in _NESTED:
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
            break
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ModelFileError(f"weights file {path} holds no state dict of tensors; pass a file of a model's state_dict "
                               "(safetensors, or a torch checkpoint with one under 'state_dict' or 'model')")
    return {k.removeprefix("module."): v for k, v in state.items()}


def load_weights(model: torch.nn.Module, path: str | Path) -> list[str]:
    """Copy matching tensors from ``path`` into ``model``; return the names left at their fresh values.

    Tensors whose shape differs (a classifier for another number of classes, another input channel
    count) are skipped and reported, the usual way to fine-tune. Nothing matching at all is an error.
    """
    state = read_state(path)
    own = model.state_dict()
    usable = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    if not usable:
        raise ModelFileError(f"no tensor in {path} matches the model by name and shape; is it for this architecture?")
    skipped = sorted(k for k in state if k in own and k not in usable)
    fresh = sorted(k for k in own if k not in usable)
    model.load_state_dict(usable, strict=False)
    if skipped:
        log.warning("bestiary: weights %s: shapes differ, kept fresh: %s", path, ", ".join(skipped))
    unused = sorted(k for k in state if k not in own)
    if unused:
        log.warning("bestiary: weights %s: %d tensors match no parameter (%s...)", path, len(unused), unused[0])
    return fresh
