"""Errors raised by registry lookups and registration.

Lookup errors subclass :class:`KeyError` so ``except KeyError`` keeps working, but print their
message as written instead of ``KeyError``'s quoted repr.
"""

from __future__ import annotations


class RegistryError(Exception):
    """Base class of every registry error."""


class LookupFailure(RegistryError, KeyError):
    """A name could not be resolved to exactly one entry."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class UnknownEntryError(LookupFailure):
    """No entry of the kind has this name.

    :ivar kind: the table that was searched.
    :ivar name: the name asked for.
    :ivar suggestions: close matches, best first.
    """

    def __init__(
        self, kind: str, name: str, suggestions: list[str], list_command: str | None = None
    ) -> None:
        self.kind = kind
        self.name = name
        self.suggestions = suggestions
        message = f"unknown {singular(kind)} {name!r}."
        if suggestions:
            message += f" Did you mean: {', '.join(suggestions)}?"
        message += f" Run `{list_command or f'bestiary list {kind}'}` to see them all."
        super().__init__(message)


class AmbiguousEntryError(LookupFailure):
    """A bare name is registered by several plugins.

    :ivar candidates: ``(qualified_name, distribution, version)`` of each match.
    """

    def __init__(self, kind: str, name: str, candidates: list[tuple[str, str, str]]) -> None:
        self.kind = kind
        self.name = name
        self.candidates = candidates
        listed = "; ".join(f"{q} (from {d} {v})" for q, d, v in candidates)
        super().__init__(
            f"{singular(kind)} name {name!r} is ambiguous: it is registered by {listed}. "
            f"Use one of the qualified names."
        )


class UnknownKindError(LookupFailure):
    """The kind itself is not known."""

    def __init__(self, kind: str, known: list[str], suggestions: list[str]) -> None:
        self.kind = kind
        message = f"unknown kind {kind!r}."
        if suggestions:
            message += f" Did you mean: {', '.join(suggestions)}?"
        message += f" Known kinds: {', '.join(known)}."
        super().__init__(message)


class EntryLoadError(RegistryError, ImportError):
    """An entry's factory could not be imported; the message names the entry, its plugin and the
    command that reinstalls it."""


class InvalidEntryError(RegistryError, ValueError):
    """An entry failed validation when it was registered."""


class DuplicateEntryError(InvalidEntryError):
    """The same plugin registered one qualified name twice."""


def singular(kind: str) -> str:
    """Return the singular of a kind name: ``strategies`` -> ``strategy``."""
    if kind.endswith("ies"):
        return kind[:-3] + "y"
    if kind.endswith("s"):
        return kind[:-1]
    return kind
