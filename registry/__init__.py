"""bestiary.registry: typed tables of entries, pure Python (no torch, no plugin imports).

Lookups by bare name (``resnet50``) or qualified name (``vision:resnet50``); listings with fnmatch
patterns and filters; errors that suggest close matches and name the command that lists a kind.
"""

from __future__ import annotations

from .entry import Entry, Provenance
from .errors import (
    AmbiguousEntryError,
    DuplicateEntryError,
    InvalidEntryError,
    LookupFailure,
    RegistryError,
    UnknownEntryError,
    UnknownKindError,
    singular,
)
from .table import Registry, Table, name_matches

__all__ = [
    "AmbiguousEntryError",
    "DuplicateEntryError",
    "Entry",
    "InvalidEntryError",
    "LookupFailure",
    "Provenance",
    "Registry",
    "RegistryError",
    "Table",
    "UnknownEntryError",
    "UnknownKindError",
    "name_matches",
    "singular",
]
