"""bestiary.registry: typed tables of entries, pure Python (no torch, no plugin imports).

Lookups by bare name (``resnet50``) or qualified name (``vision:resnet50``); listings with fnmatch
patterns and filters; errors that suggest close matches and name the command that lists a kind.
"""

from __future__ import annotations

from .direction import DIRECTION_KEY, metric_direction
from .entry import Entry, Provenance
from .errors import (
    AmbiguousEntryError,
    DuplicateEntryError,
    EntryLoadError,
    InvalidEntryError,
    LookupFailure,
    RegistryError,
    UnknownEntryError,
    UnknownKindError,
    singular,
)
from .space import Param, SearchSpace
from .table import Registry, Table, name_matches

__all__ = [
    "DIRECTION_KEY",
    "AmbiguousEntryError",
    "DuplicateEntryError",
    "Entry",
    "EntryLoadError",
    "InvalidEntryError",
    "LookupFailure",
    "Param",
    "Provenance",
    "Registry",
    "RegistryError",
    "SearchSpace",
    "Table",
    "UnknownEntryError",
    "UnknownKindError",
    "metric_direction",
    "name_matches",
    "singular",
]
