"""Choosing entries to check, and turning them into pytest tests. No torch, no pytest at import."""

from __future__ import annotations

import contextlib
from collections import Counter
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from ..api import get_entry
from ..host import PluginHost, get_host
from ..registry import Entry, LookupFailure, name_matches, singular
from .report import ConformanceError

if TYPE_CHECKING:
    from ._support import Overrides


def matches(entry: Entry, pattern: str) -> bool:
    """Whether ``pattern`` names ``entry``: an fnmatch pattern on the bare name (``resnet*``), or on
    the qualified name when it holds ``:`` (``myzoo:*``), as ``bestiary list`` matches; a kind and a
    slash first restrict it to that kind (``architectures/myzoo:*``)."""
    kind, sep, names = pattern.rpartition("/")
    if sep and kind not in (entry.kind, singular(entry.kind)):
        return False
    return name_matches(entry, names)


def _patterns(value: str | Sequence[str] | None) -> list[str]:
    if value is None:
        return []
    items = value.split(",") if isinstance(value, str) else list(value)
    return [p.strip() for p in items if p.strip()]


def select_entries(
    kind: str | None = None,
    pattern: str | Sequence[str] | None = None,
    *,
    plugin: str | None = None,
    task: str | None = None,
    tag: str | None = None,
    exclude: str | Sequence[str] | None = None,
    host: PluginHost | None = None,
) -> list[Entry]:
    """Entries to check: of ``kind`` (every kind when ``None``), matching any of ``pattern``
    (comma-separated; see :func:`matches`) and none of ``exclude``, filtered by plugin, task and tag.

    :param host: list this host's entries (default: the process-wide one); loads its plugins.
    """
    registry = (host or get_host()).registry
    includes, excludes = _patterns(pattern), _patterns(exclude)
    return [
        e
        for table in ([registry.table(kind)] if kind is not None else list(registry))
        for e in table.select(task=task, tag=tag, plugin=plugin)
        if (not includes or any(matches(e, p) for p in includes)) and not any(matches(e, p) for p in excludes)
    ]


def entry_ids(entries: Sequence[Entry]) -> list[str]:
    """Test ids: qualified names, prefixed with the kind where two kinds share one."""
    counts = Counter(e.qualified_name for e in entries)
    return [
        e.qualified_name if counts[e.qualified_name] == 1 else f"{singular(e.kind)}/{e.qualified_name}"
        for e in entries
    ]


def current(entry: Entry) -> Entry:
    """The entry as the process-wide registry holds it now (it may have been reloaded since
    collection); the given one when the registry no longer has it."""
    with contextlib.suppress(LookupFailure):
        return get_entry(entry.kind, entry.qualified_name)
    return entry


def run_check(entry: Entry, overrides: Overrides | None = None) -> None:
    """Check ``entry`` inside a pytest test: a defect fails it with the kit's message, an entry that
    cannot be checked here skips it."""
    import pytest  # only called from tests

    from .checks import check_entry

    try:
        report = check_entry(current(entry), overrides=overrides)
    except ConformanceError as exc:
        pytest.fail(str(exc), pytrace=False)
    if report.skipped is not None:
        pytest.skip(report.skipped)


def conformance_tests(
    kind: str | None = None,
    pattern: str | Sequence[str] | None = None,
    *,
    plugin: str | None = None,
    task: str | None = None,
    tag: str | None = None,
    exclude: str | Sequence[str] | None = None,
    overrides: Overrides | None = None,
    host: PluginHost | None = None,
) -> Callable[..., None]:
    """A pytest test function parametrized with one case per selected entry (ids: qualified names).

    Assign it in a test module: ``test_conformance = conformance_tests(plugin="myzoo")``. The
    filters are those of :func:`select_entries`; ``overrides`` maps names or patterns to
    conformance settings (``{"resnet*": {"build": {"width": 8}}}``). Entries are listed when the
    module is collected, so plugins added at run time must be added before this call, or to a
    ``host`` passed here (the checks still look tasks and saved models up in the process-wide host:
    make that host current while the tests run).
    """
    import pytest  # this helper builds pytest tests

    entries = select_entries(kind, pattern, plugin=plugin, task=task, tag=tag, exclude=exclude, host=host)
    if not entries:
        filters = {
            "kind": kind,
            "pattern": pattern,
            "plugin": plugin,
            "task": task,
            "tag": tag,
            "exclude": exclude,
        }
        asked = {k: v for k, v in filters.items() if v}
        plugins = sorted({e.provenance.plugin for e in select_entries(host=host)})

        def test_no_entries() -> None:
            pytest.fail(
                f"bestiary.testing: no entries match {asked}; plugins with entries: "
                f"{', '.join(plugins) or 'none'} (see `bestiary plugins`)",
                pytrace=False,
            )

        return test_no_entries

    @pytest.mark.parametrize("bestiary_entry", entries, ids=entry_ids(entries))
    def test_conformance(bestiary_entry: Entry) -> None:
        run_check(bestiary_entry, overrides)

    return test_conformance


__all__ = ["conformance_tests", "entry_ids", "matches", "run_check", "select_entries"]
