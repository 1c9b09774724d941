"""bestiary: a plugin-based, extensible model zoo for PyTorch.

Look things up by name, list them, build them::

    import bestiary
    bestiary.list_entries("architectures", "resnet*")
    bestiary.get_entry("architectures", "resnet50")
    bestiary.build("architectures", "resnet50", num_classes=10)

Plugins implement the hooks in :mod:`bestiary.hookspecs` with ``@bestiary.hookimpl``.
Importing this package stays cheap: no torch until something is built.
"""

from __future__ import annotations

from ._version import __version__
from .api import build, get_entry, kinds, list_entries, list_plugins, load_model
from .hookspecs import hookimpl, hookspec
from .host import DEFAULT_PLUGINS, PluginHost, PluginInfo, PluginLoadError, get_host, reset_host
from .registry import (
    AmbiguousEntryError,
    Entry,
    InvalidEntryError,
    Provenance,
    UnknownEntryError,
    UnknownKindError,
)

__all__ = [
    "DEFAULT_PLUGINS",
    "AmbiguousEntryError",
    "Entry",
    "InvalidEntryError",
    "PluginHost",
    "PluginInfo",
    "PluginLoadError",
    "Provenance",
    "UnknownEntryError",
    "UnknownKindError",
    "__version__",
    "build",
    "get_entry",
    "get_host",
    "hookimpl",
    "hookspec",
    "kinds",
    "list_entries",
    "list_plugins",
    "load_model",
    "reset_host",
]
