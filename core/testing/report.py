"""What a conformance check returns or raises. Pure Python: no torch, so pytest can import it."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..registry import Entry, singular


def describe(entry: Entry) -> str:
    """``architecture 'myzoo:resnet9' (plugin 'myzoo', distribution myzoo 1.2)``."""
    p = entry.provenance
    return f"{singular(entry.kind)} {entry.qualified_name!r} (plugin {p.plugin!r}, distribution {p.distribution} {p.version})"


class ConformanceError(AssertionError):
    """An entry broke the contract of its kind.

    It is an :class:`AssertionError`, so pytest reports it as a test failure, not an error.

    :ivar entry: the entry checked.
    :ivar check: the step that failed (``build``, ``save/load round trip``, ...).
    :ivar detail: what went wrong.
    :ivar hint: how to fix it, when the kit can tell.
    """

    def __init__(self, entry: Entry, check: str, detail: str, hint: str | None = None) -> None:
        self.entry, self.check, self.detail, self.hint = entry, check, detail, hint
        message = f"{describe(entry)} failed conformance check {check!r}: {detail}"
        if hint:
            message += f"\n  hint: {hint}"
        super().__init__(message)

    def __reduce__(self) -> tuple[type[ConformanceError], tuple[Entry, str, str, str | None]]:
        return type(self), (self.entry, self.check, self.detail, self.hint)


@dataclass
class Report:
    """The outcome of a check that did not fail.

    :ivar entry: the entry checked.
    :ivar passed: the steps that passed, in order.
    :ivar skipped: why the entry could not be checked here (``None`` when it was).
    """

    entry: Entry
    passed: list[str] = field(default_factory=list)
    skipped: str | None = None

    @property
    def ok(self) -> bool:
        return self.skipped is None

    def __str__(self) -> str:
        if self.skipped is not None:
            return f"{describe(self.entry)}: skipped: {self.skipped}"
        return f"{describe(self.entry)}: {len(self.passed)} checks passed ({', '.join(self.passed)})"
