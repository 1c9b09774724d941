"""Typed tables of entries: lookup by bare or qualified name, listing with patterns and filters."""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable, Iterator, Sequence
from fnmatch import fnmatchcase

from .entry import Entry
from .errors import (
    AmbiguousEntryError,
    DuplicateEntryError,
    UnknownEntryError,
    UnknownKindError,
    singular,
)


class Table:
    """All entries of one kind.

    Lookups go through one dictionary holding every qualified name and every bare name that only
    one plugin registered, so a hit costs one dict access; misses take the slow path that explains.

    Besides the entries plugins register up front, a table can hold *dynamic* entries: ones a
    plugin produces on demand for a qualified name (``timm:convnext_atto``) through ``resolver``,
    or lists on request through ``discoverer``. They are found by qualified name only, and listed
    only when asked for (``select(..., dynamic=True)``).

    :param resolver: ``(kind, namespace, name) -> entries`` for a qualified name not registered.
    :param discoverer: ``(kind) -> entries`` listing every dynamic entry.
    """

    def __init__(
        self,
        kind: str,
        resolver: Callable[[str, str, str], list[Entry]] | None = None,
        discoverer: Callable[[str], list[Entry]] | None = None,
    ) -> None:
        self.kind = kind
        self._entries: dict[str, Entry] = {}  # qualified name -> entry
        self._bare: dict[str, list[Entry]] = {}
        self._index: dict[str, Entry] = {}
        self._dynamic: dict[str, Entry] = {}
        self._resolver = resolver
        self._discoverer = discoverer
        self._discovered = False

    def add(self, entry: Entry) -> None:
        """Add ``entry``; a second entry with the same qualified name is refused."""
        if entry.kind != self.kind:
            raise ValueError(f"entry of kind {entry.kind!r} added to table {self.kind!r}")
        qualified = entry.qualified_name
        if qualified in self._entries:
            raise DuplicateEntryError(
                f"{singular(self.kind)} {qualified!r} is registered twice by plugin "
                f"{entry.provenance.plugin!r}"
            )
        self._entries[qualified] = entry
        self._index[qualified] = entry
        same = self._bare.setdefault(entry.name, [])
        same.append(entry)
        if len(same) == 1:
            self._index[entry.name] = entry
        else:
            self._index.pop(entry.name, None)

    def get(self, name: str) -> Entry:
        """Return the entry called ``name`` (bare or ``plugin:name``).

        :raises AmbiguousEntryError: a bare name that several plugins registered.
        :raises UnknownEntryError: no such entry; the error lists close matches.
        """
        try:
            return self._index[name]
        except KeyError:
            pass
        if ":" in name:
            found = self._resolve(name)
            if found is not None:
                return found
        same = self._bare.get(name)
        if same:
            raise AmbiguousEntryError(
                self.kind,
                name,
                [(e.qualified_name, e.provenance.distribution, e.provenance.version) for e in same],
            )
        raise UnknownEntryError(self.kind, name, self.suggest(name))

    def _resolve(self, qualified: str) -> Entry | None:
        if qualified in self._dynamic:
            return self._dynamic[qualified]
        if self._resolver is None:
            return None
        namespace, _, name = qualified.partition(":")
        for entry in self._resolver(self.kind, namespace, name):
            self.add_dynamic(entry)
        return self._dynamic.get(qualified)

    def add_dynamic(self, entry: Entry) -> None:
        """Add an entry found on demand; registered entries keep their qualified names."""
        if entry.qualified_name not in self._entries:
            self._dynamic.setdefault(entry.qualified_name, entry)

    def discover(self) -> None:
        """Ask the discoverer, once, for every dynamic entry."""
        if self._discoverer is not None and not self._discovered:
            for entry in self._discoverer(self.kind):
                self.add_dynamic(entry)
            self._discovered = True

    def suggest(self, name: str, n: int = 5) -> list[str]:
        """Names close to ``name``, best first: qualified names when ``name`` is qualified, else bare
        names (a bare name that several plugins register is offered in its qualified forms)."""
        words = list(self._entries) if ":" in name else list(self._bare)
        close = difflib.get_close_matches(name, words, n=n, cutoff=0.6)
        if len(close) < n:
            close += [w for w in sorted(words) if name and w.startswith(name) and w not in close]
        out: list[str] = []
        for word in close:
            same = self._bare.get(word, ())
            out.extend(e.qualified_name for e in same) if len(same) > 1 else out.append(word)
        return out[:n]

    def __contains__(self, name: object) -> bool:
        return name in self._index or name in self._bare

    def __iter__(self) -> Iterator[Entry]:
        return iter(sorted(self._entries.values(), key=lambda e: (e.name, e.qualified_name)))

    def __len__(self) -> int:
        return len(self._entries)

    def select(
        self,
        include: str | Sequence[str] | None = None,
        exclude: str | Sequence[str] | None = None,
        *,
        task: str | None = None,
        tag: str | None = None,
        plugin: str | None = None,
        dynamic: bool = False,
    ) -> list[Entry]:
        """Entries matching any ``include`` pattern and no ``exclude`` pattern, filtered by task,
        tag and plugin. Patterns are fnmatch patterns on the bare name (``resnet*``), or on the
        qualified name when they contain ``:`` (``vision:*``); a bare pattern never matches the
        plugin part, so ``v*`` does not list every entry of a plugin called ``vision``. With
        ``dynamic``, entries that plugins offer on request are discovered and listed too."""
        includes = _patterns(include)
        excludes = _patterns(exclude)
        out = []
        entries = list(self)
        if dynamic:
            self.discover()
            entries += sorted(self._dynamic.values(), key=lambda e: (e.name, e.qualified_name))
        for entry in entries:
            if includes and not any(name_matches(entry, p) for p in includes):
                continue
            if excludes and any(name_matches(entry, p) for p in excludes):
                continue
            if task is not None and entry.task != task:
                continue
            if tag is not None and tag not in entry.tags:
                continue
            if plugin is not None and entry.provenance.plugin != plugin:
                continue
            out.append(entry)
        return out


def name_matches(entry: Entry, pattern: str) -> bool:
    """An fnmatch ``pattern`` on the bare name, or on the qualified name when it holds ``:``."""
    return fnmatchcase(entry.qualified_name if ":" in pattern else entry.name, pattern)


def _patterns(value: str | Sequence[str] | None) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    return list(value)


class Registry:
    """One :class:`Table` per kind."""

    def __init__(
        self,
        kinds: Iterable[str],
        resolver: Callable[[str, str, str], list[Entry]] | None = None,
        discoverer: Callable[[str], list[Entry]] | None = None,
    ) -> None:
        self._resolver, self._discoverer = resolver, discoverer
        self._tables = {kind: Table(kind, resolver, discoverer) for kind in kinds}

    def add_kind(self, kind: str) -> None:
        """Add an empty table for ``kind`` (a kind a plugin declared); no-op if it exists."""
        self._tables.setdefault(kind, Table(kind, self._resolver, self._discoverer))

    @property
    def kinds(self) -> list[str]:
        return list(self._tables)

    def resolve_kind(self, kind: str) -> str:
        """Canonical (plural) name of ``kind``; the singular form is accepted too."""
        if kind in self._tables:
            return kind
        for known in self._tables:
            if singular(known) == kind:
                return known
        words = self.kinds + [singular(k) for k in self.kinds]
        suggestions = difflib.get_close_matches(kind, words, n=3, cutoff=0.6)
        raise UnknownKindError(kind, self.kinds, suggestions)

    def table(self, kind: str) -> Table:
        return self._tables[self.resolve_kind(kind)]

    def add(self, entry: Entry) -> None:
        self.table(entry.kind).add(entry)

    def find(self, name: str) -> list[Entry]:
        """Every entry, of any kind, that ``name`` denotes (bare or qualified)."""
        found = []
        for table in self._tables.values():
            if name in table._index:
                found.append(table._index[name])
            elif ":" in name:
                entry = table._resolve(name)
                found.extend([entry] if entry is not None else [])
            else:
                found.extend(table._bare.get(name, ()))
        return found

    def __iter__(self) -> Iterator[Table]:
        return iter(self._tables.values())
