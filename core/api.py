"""The Python API: look entries up, list them and build them by name.

>>> import bestiary
>>> bestiary.list_entries("architectures", "resnet*")          # doctest: +SKIP
>>> bestiary.get_entry("architectures", "resnet50").metadata   # doctest: +SKIP
>>> model = bestiary.build("architectures", "resnet50", num_classes=10)  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .host import PluginInfo, get_host
from .registry import Entry


def kinds() -> list[str]:
    """The registered kinds (``architectures``, ``datasets``, ``metrics``, ``strategies``, ...)."""
    return get_host().registry.kinds


def list_entries(
    kind: str | None = None,
    pattern: str | Sequence[str] | None = None,
    *,
    exclude: str | Sequence[str] | None = None,
    task: str | None = None,
    tag: str | None = None,
    plugin: str | None = None,
) -> list[Entry]:
    """Entries of ``kind`` (all kinds when ``None``) matching the filters.

    :param kind: a kind, plural or singular (``"architectures"``, ``"architecture"``).
    :param pattern: fnmatch pattern(s) on the bare name (``"resnet*"``), or on the qualified name
        when they contain ``:`` (``"vision:*"``).
    :param exclude: fnmatch pattern(s) to leave out.
    :param task: keep entries of this task.
    :param tag: keep entries carrying this tag.
    :param plugin: keep entries from this plugin.
    """
    registry = get_host().registry
    tables = [registry.table(kind)] if kind is not None else list(registry)
    out: list[Entry] = []
    for table in tables:
        out.extend(table.select(pattern, exclude, task=task, tag=tag, plugin=plugin))
    return out


def get_entry(kind: str, name: str) -> Entry:
    """The entry called ``name`` (bare or ``plugin:name``) of ``kind``.

    :raises UnknownEntryError: with close matches when nothing has that name.
    :raises AmbiguousEntryError: when several plugins register the bare name.
    """
    return get_host().registry.table(kind).get(name)


def build(kind: str, name: str, /, **kwargs: Any) -> Any:
    """Build the entry called ``name``: its factory called with its defaults updated by ``kwargs``."""
    return get_entry(kind, name).build(**kwargs)


def list_plugins() -> list[PluginInfo]:
    """Every plugin seen, with its status (``ok``, ``failed`` or ``blocked``).

    Not called ``bestiary.plugins``: that name is the package of built-in plugins, and importing
    it replaces any attribute of that name on ``bestiary``.
    """
    return get_host().plugins


def load_model(path: str | Path, *, device: str = "cpu") -> Any:
    """Rebuild the model saved in a run directory (or its ``model/`` folder) through the registry
    and load its weights; returned in eval mode.

    >>> model = bestiary.load_model("runs/20261126-101500-resnet18-digits-1a2b")  # doctest: +SKIP
    """
    # torch is imported only when a model is actually loaded
    from .engine.artifact import load_model as _load

    return _load(path, device=device)
