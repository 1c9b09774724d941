"""Reading a torch.distributed.checkpoint folder without running anything it contains.

torch's reader unpickles two things of a distributed checkpoint as they are: the index
(``.metadata``) and every non-tensor value in the shards (``torch.load(weights_only=False)``:
optimizer hyperparameters, step counters). Whoever can write a checkpoint folder could so run code
on ``--resume``. Here the index is read with an unpickler that builds only the classes torch writes
there (the dataclasses of ``torch.distributed.checkpoint.metadata``, the storage records of the
filesystem writer, ``torch.Size``, dtypes, layouts, paths) and refuses every other global (the
allowlist is read from the installed torch: every dataclass and enum of its metadata module, which
keeps it valid across versions that add fields or records there), and each non-tensor value with
``torch.load(weights_only=True)`` (tensors and plain values only). Tensors torch reads with
``weights_only=True`` already.
"""

from __future__ import annotations

import dataclasses
import enum
import importlib
import io
import pickle
from pathlib import Path
from typing import Any

import torch  # the reader builds torch's metadata objects; only fsdp runs import this module
import torch.distributed.checkpoint as dcp
import torch.distributed.checkpoint.metadata as dcp_metadata
from torch.distributed.checkpoint import CheckpointException, DefaultLoadPlanner, FileSystemReader
from torch.distributed.checkpoint.metadata import Metadata, StorageMeta
from torch.distributed.checkpoint.planner import ReadItem

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
        obj = vars(dcp_metadata).get(name)
        is_record = isinstance(obj, type) and (dataclasses.is_dataclass(obj) or issubclass(obj, enum.Enum))
        return obj if is_record and obj.__module__ == module else None
    if module == "torch" and isinstance(vars(torch).get(name), torch.dtype):  # vars: no lazy imports
        return vars(torch)[name]
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


class SafeLoadPlanner(DefaultLoadPlanner):
    """torch's load planner with every non-tensor value read by ``torch.load(weights_only=True)``."""

    def __init__(self, folder: Path) -> None:
        super().__init__()
        self.folder = folder  # for the error message

    def load_bytes(self, read_item: ReadItem, value: io.BytesIO) -> None:
        try:
            obj = torch.load(value, weights_only=True)
        except Exception as exc:  # a global beyond plain values and tensors: not what bestiary saves
            raise CheckpointError(f"checkpoint {Path(self.folder).parent} refused: its value "
                                  f"{read_item.dest_index.fqn} holds more than tensors and plain values "
                                  f"({type(exc).__name__}); resume from another checkpoint or start afresh") from exc
        # the parent stores the value where it belongs (it unpickles as it does so): hand it a
        # pickle of the plain value just built, never the checkpoint's own bytes
        clean = io.BytesIO()
        torch.save(obj, clean)
        clean.seek(0)
        super().load_bytes(read_item, clean)


def load(state: dict[str, Any], folder: Path) -> None:
    """``dcp.load`` of the checkpoint folder ``folder`` into ``state``, through :class:`SafeReader`
    and :class:`SafeLoadPlanner`.

    :raises CheckpointError: a refused or unreadable file, in one line (torch's collective error,
        which carries every rank's traceback, is reduced to the first rank's message).
    """
    try:
        dcp.load(state, storage_reader=SafeReader(str(folder)), planner=SafeLoadPlanner(folder))
    except CheckpointException as exc:  # a BaseException: raised on every rank when one failed
        causes = [failure[0] for failure in exc.failures.values()]
        refused = next((c for c in causes if isinstance(c, CheckpointError)), None)
        if refused is not None:
            raise CheckpointError(str(refused)) from exc
        first = causes[0] if causes else exc
        raise CheckpointError(f"checkpoint {folder.parent} cannot be read: {type(first).__name__}: "
                              f"{str(first).splitlines()[0] if str(first) else ''}") from exc
    except CheckpointError:
        raise
    except Exception as exc:
        raise CheckpointError(f"checkpoint {folder.parent} cannot be read: {str(exc).splitlines()[0]}") from exc
