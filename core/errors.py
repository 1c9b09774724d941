"""User-facing errors, importable without torch.

A failure the user can fix (a bad option, a damaged file, a full disk) is raised as a
:class:`UserError` subclass whose message says what was wrong and what to do, in one line; the
``bestiary`` command prints it as ``Error: ...`` and exits with the class's ``exit_code`` (2 for
usage and config errors, 1 for the rest). Any other exception is a bug, in bestiary or in a
plugin, and the command shows its traceback. Each class also derives from the builtin exception
it refines (``ValueError``, ``OSError``, ``ImportError``), so ``except ValueError`` keeps working.
"""

from __future__ import annotations


class UserError(Exception):
    """A failure the user can fix; the message names the input and the remedy.

    :cvar exit_code: the exit status of the ``bestiary`` command that fails with it.
    """

    exit_code = 1


class ConfigError(UserError, ValueError):
    """A configuration value is invalid; the message names the field and the allowed values."""

    exit_code = 2


class TaskMismatchError(UserError, ValueError):
    """Architecture, dataset or metric serve different tasks."""

    exit_code = 2


class DataError(UserError, ValueError):
    """An input file or its content is unusable: missing fields, non-numeric or non-finite values,
    a shape the model does not take. The message names the file and the field or row."""


class CheckpointError(UserError, ValueError):
    """A checkpoint is missing, truncated or was modified after it was written."""


class ModelFileError(CheckpointError):
    """A saved model (``model.safetensors``, ``model.json``) is unreadable or does not fit its
    architecture; the remedy is to export it again or restore it from a copy."""


class MissingDependencyError(UserError, ImportError):
    """An optional package a feature needs is not installed; the message names the install command."""


class StorageError(UserError, OSError):
    """Writing or reading a path failed for a reason outside bestiary: a full disk, a read-only
    folder, missing permissions. The message names the path."""

    def __str__(self) -> str:
        return str(self.strerror if self.strerror is not None else (self.args[0] if self.args else ""))


#: errno names of OSErrors that come from the user's files and machine, not from a bug, and the
#: remedy each gets on the command line.
STORAGE_REMEDIES = {
    "ENOSPC": "the disk is full: free space or write elsewhere (--runs-root, --run-dir, --output)",
    "EDQUOT": "the disk quota is used up: free space or write elsewhere (--runs-root, --run-dir, --output)",
    "EROFS": "the file system is read-only: write elsewhere (--runs-root, --run-dir, --output)",
    "EACCES": "permission denied: check the path's owner and mode, or write elsewhere",
    "EPERM": "operation not permitted: check the path's owner and mode, or write elsewhere",
    "ENOENT": "no such file or folder: check the path",
    "ENOTDIR": "a part of the path is not a folder: check the path",
    "EISDIR": "the path is a folder, a file was expected: check the path",
    "EEXIST": "the path exists already: remove it or choose another",
    "ENAMETOOLONG": "the file name is too long: choose a shorter path",
    "EIO": "the device reported an I/O error: check the disk",
    "EMFILE": "too many open files: raise the limit (ulimit -n)",
}


def storage_error(exc: OSError, path: object = None) -> StorageError | None:
    """``exc`` as a :class:`StorageError` with its remedy and path, or ``None`` when it is not one
    of :data:`STORAGE_REMEDIES` (an OSError raised without an errno is taken as written: code raises
    those deliberately, with their message).

    :param path: the path being written or read, named when ``exc`` names none (a failed ``write``).
    """
    import errno as errnos

    if isinstance(exc, UserError):
        return None
    if exc.errno is None:
        return StorageError(str(exc)) if exc.args and isinstance(exc.args[0], str) else None
    remedy = STORAGE_REMEDIES.get(errnos.errorcode.get(exc.errno, ""))
    if remedy is None:
        return None
    paths = [str(p) for p in (exc.filename, exc.filename2) if p is not None] or ([str(path)] if path else [])
    where = f" ({' -> '.join(paths)})" if paths else ""
    return StorageError(exc.errno, f"{exc.strerror or 'error'}{where}: {remedy}")
