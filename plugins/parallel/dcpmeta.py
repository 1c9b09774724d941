"""Reading a torch.distributed.checkpoint folder without running anything it contains.

torch stores a distributed checkpoint's index (``.metadata``) as a pickle and its
``FileSystemReader`` unpickles it as is, so whoever can write a checkpoint folder could run code
on ``--resume``. :class:`SafeReader` reads that index with an unpickler that builds only the
classes torch writes there (the dataclasses of ``torch.distributed.checkpoint.metadata``, the
storage records of the filesystem writer, ``torch.Size``, dtypes, layouts, paths) and refuses
every other global, so nothing in a checkpoint is ever executed. The allowlist is read from the
installed torch (every dataclass and enum of its metadata module), which keeps it valid across
torch versions that add fields or record classes there.
"""

from __future__ import annotations

import dataclasses
import enum
import importlib
import pickle
from pathlib import Path
from typing import Any

import torch  # the reader builds torch's metadata objects; only fsdp runs import this module
import torch.distributed.checkpoint.metadata as dcp_metadata
from torch.distributed.checkpoint import FileSystemReader
from torch.distributed.checkpoint.metadata import Metadata, StorageMeta

from bestiary.extend import CheckpointError

#: Classes of other modules that torch's filesystem writer puts in ``.metadata``.
_EXTRA = {
    ("torch.distributed.checkpoint.filesystem", "_StorageInfo"),
    ("torch", "Size"),
    ("torch.serialization", "_get_layout"),  # maps a layout's name to the torch.layout object
    ("pathlib", "PosixPath"), ("pathlib", "WindowsPath"), ("pathlib", "PurePosixPath"),
    ("pathlib", "PureWindowsPath"), ("pathlib", "Path"),
    ("collections", "OrderedDict"), ("builtins", "set"), ("builtins", "frozenset"),
}


def _allowed(module: str, name: str) -> Any | None:
    """The object ``module.name`` names when ``.metadata`` may hold it, else ``None``."""
    if module == dcp_metadata.__name__:
        obj = getattr(dcp_metadata, name, None)
        is_record = isinstance(obj, type) and (dataclasses.is_dataclass(obj) or issubclass(obj, enum.Enum))
        return obj if is_record and obj.__module__ == module else None
    if module == "torch" and isinstance(getattr(torch, name, None), torch.dtype):
        return getattr(torch, name)
    if (module, name) not in _EXTRA:
        return None
    return getattr(importlib.import_module(module), name)


class _Restricted(pickle.Unpickler):
    """An unpickler that resolves only the globals :func:`_allowed` admits."""

    def find_class(self, module: str, name: str) -> Any:
        obj = _allowed(module, name)
        if obj is None:
            raise pickle.UnpicklingError(f"refusing {module}.{name}: not a checkpoint metadata class")
        return obj


def read_metadata(path: str | Path) -> Metadata:
    """The :class:`Metadata` in the file ``path`` (a checkpoint's ``dcp/.metadata``).

    :raises CheckpointError: the file holds anything but checkpoint metadata, or cannot be read.
    """
    try:
        with open(path, "rb") as f:
            metadata = _Restricted(f).load()
    except Exception as exc:  # any failure means the file is not what torch writes: refuse it
        raise CheckpointError(f"checkpoint metadata {path} refused: {exc}; "
                              "resume from another checkpoint or start the run afresh") from exc
    if not isinstance(metadata, Metadata):
        raise CheckpointError(f"checkpoint metadata {path} refused: it holds a {type(metadata).__name__}, "
                              "not checkpoint metadata; resume from another checkpoint or start afresh")
    return metadata


class SafeReader(FileSystemReader):
    """torch's filesystem reader with ``.metadata`` read by :func:`read_metadata` (no pickle.load)."""

    def read_metadata(self, *args: Any, **kwargs: Any) -> Metadata:
        # the file torch's reader opens: the global index, or a rank's own when torch asks for it
        rank = kwargs.get("rank")
        metadata = read_metadata(Path(self.path) / (".metadata" if rank is None else f"__{rank}.metadata"))
        storage_meta = getattr(metadata, "storage_meta", None) or StorageMeta()
        storage_meta.load_id = self.load_id
        metadata.storage_meta = storage_meta
        return metadata
