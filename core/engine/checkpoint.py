"""Checkpoints as safetensors plus JSON, written atomically and verified on load.

A checkpoint is a directory: ``model.safetensors`` (weights), ``state.safetensors`` (every other
tensor: optimizer moments, RNG states), ``state.json`` (the structure around those tensors) and
``manifest.json`` (size and SHA-256 of each file). It is written to a temporary directory, synced,
then renamed into place, so a crash never leaves a half-written checkpoint under the final name.
Loading checks every digest first and never unpickles anything.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch  # checkpoints hold tensors; only runs import this module
from safetensors.torch import load_file, save_file

from ..errors import CheckpointError
from .filemode import share

FORMAT = "bestiary-checkpoint/1"
FILES = ("model.safetensors", "state.safetensors", "state.json")


@dataclass
class Loaded:
    model: dict[str, torch.Tensor]
    optimizer: dict[str, Any]
    extra: dict[str, Any]


def flatten_state(obj: Any, tensors: dict[str, torch.Tensor], prefix: str) -> Any:
    """``obj`` as JSON values with each tensor replaced by a reference into ``tensors`` (filled
    here, keyed ``t0``, ``t1``, ...); tuples stay distinguishable from lists. A strategy with its own
    checkpoint layout stores its extra state this way: ``tensors`` to safetensors, the rest to JSON.

    :param prefix: where ``obj`` sits, for the error message.
    :raises TypeError: a value a checkpoint cannot hold.
    """
    if isinstance(obj, torch.Tensor):
        key = f"t{len(tensors)}"
        tensors[key] = obj.detach().cpu().contiguous().clone()
        return {"__tensor__": key}
    if isinstance(obj, dict):
        if not all(isinstance(k, (str, int)) for k in obj):
            raise TypeError(f"{prefix}: checkpoint dict keys must be str or int")
        return {"__dict__": [[k, flatten_state(v, tensors, f"{prefix}.{k}")] for k, v in obj.items()]}
    if isinstance(obj, tuple):
        return {"__tuple__": [flatten_state(v, tensors, prefix) for v in obj]}
    if isinstance(obj, list):
        return [flatten_state(v, tensors, prefix) for v in obj]
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    raise TypeError(f"{prefix}: cannot store {type(obj).__name__} in a checkpoint")


def unflatten_state(obj: Any, tensors: dict[str, torch.Tensor]) -> Any:
    """The inverse of :func:`flatten_state`: ``obj`` with its references replaced by ``tensors``."""
    if isinstance(obj, dict):
        if "__tensor__" in obj:
            return tensors[obj["__tensor__"]]
        if "__tuple__" in obj:
            return tuple(unflatten_state(v, tensors) for v in obj["__tuple__"])
        if "__dict__" in obj:
            return {k: unflatten_state(v, tensors) for k, v in obj["__dict__"]}
        raise CheckpointError(f"unexpected object in checkpoint state: {sorted(obj)}")
    if isinstance(obj, list):
        return [unflatten_state(v, tensors) for v in obj]
    return obj


def _digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def save(path: str | Path, *, model: dict[str, torch.Tensor], optimizer: dict[str, Any],
         extra: dict[str, Any]) -> Path:
    """Write a checkpoint directory at ``path`` atomically; replace an existing one."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        weights = {k: v.detach().cpu().contiguous().clone() for k, v in model.items()}
        save_file(weights, str(tmp / "model.safetensors"), metadata={"format": FORMAT})
        tensors: dict[str, torch.Tensor] = {}
        state = {"optimizer": flatten_state(optimizer, tensors, "optimizer"), "extra": flatten_state(extra, tensors, "extra")}
        save_file(tensors, str(tmp / "state.safetensors"), metadata={"format": FORMAT})
        (tmp / "state.json").write_text(json.dumps(state))
    except BaseException:
        # A full disk or a bad value: a half-written folder only wastes space (each retry another).
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return commit(tmp, path, FILES, FORMAT)


def commit(tmp: Path, path: Path, files: Iterable[str], fmt: str) -> Path:
    """Seal a checkpoint written into ``tmp``: a manifest of ``files`` (size and SHA-256, format
    ``fmt``), everything synced to disk, then ``tmp`` renamed to ``path`` (an existing checkpoint
    there is replaced only once the new one is complete)."""
    files = list(files)
    try:
        share(*(tmp / n for n in files))  # weights written 0600 would lock other users out of a shared run
        manifest = {"format": fmt, "files": {n: {"bytes": (tmp / n).stat().st_size, "sha256": _digest(tmp / n)}
                                             for n in files}}
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=1))
        for name in (*files, "manifest.json"):
            _fsync(tmp / name)
        if path.exists():
            old = path.with_name(f".{path.name}.old-{os.getpid()}")
            path.rename(old)
            try:
                tmp.rename(path)
            except BaseException:
                old.rename(path)  # keep the complete checkpoint that was there
                raise
            shutil.rmtree(old, ignore_errors=True)
        else:
            tmp.rename(path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)  # nothing under the final name refers to it
        raise
    _fsync(path.parent)
    return path


def verify(path: str | Path, *, fmt: str = FORMAT, required: tuple[str, ...] = FILES, what: str = "checkpoint",
           remedy: str = "Delete the folder to resume from an earlier checkpoint.") -> None:
    """Raise :class:`CheckpointError` unless ``path`` holds a manifest of format ``fmt`` that lists
    every ``required`` file, and every file it lists matches its size and SHA-256.

    Strategies with their own layout (the fsdp strategy's sharded checkpoints) verify through this
    too, with their format and files; model folders too (``what`` and ``remedy`` for the message).
    """
    path = Path(path)
    try:
        manifest = json.loads((path / "manifest.json").read_text())
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"{what} {path} has no readable manifest ({exc}); it is incomplete or not a {what}") from exc
    if manifest.get("format") != fmt:
        raise CheckpointError(f"{what} {path} has format {manifest.get('format')!r}, expected {fmt!r}; "
                              "resume it with the strategy that wrote it")
    files = manifest.get("files", {})
    for name in required:
        if name not in files:
            raise CheckpointError(f"{what} {path} lists no {name} in its manifest; it is incomplete. {remedy}")
    for name, expected in files.items():
        file = path / name
        if not file.is_file():
            raise CheckpointError(f"{what} {path} is missing {name}. {remedy}")
        size = file.stat().st_size
        if size != expected.get("bytes") or _digest(file) != expected.get("sha256"):
            raise CheckpointError(
                f"{what} {path} is corrupt: {name} does not match its manifest "
                f"({size} bytes, expected {expected.get('bytes')}); it was truncated or modified. {remedy}"
            )


def load(path: str | Path, map_location: torch.device | str = "cpu") -> Loaded:
    """Verify and read a checkpoint written by :func:`save`."""
    path = Path(path)
    verify(path)
    device = str(map_location)
    try:
        model = load_file(str(path / "model.safetensors"), device=device)
        tensors = load_file(str(path / "state.safetensors"), device="cpu")
        state = json.loads((path / "state.json").read_text())
    except Exception as exc:  # digests matched but the content does not parse: refuse it all the same
        raise CheckpointError(f"checkpoint {path} cannot be read: {exc}") from exc
    return Loaded(model=model, optimizer=unflatten_state(state["optimizer"], tensors), extra=unflatten_state(state["extra"], tensors))
