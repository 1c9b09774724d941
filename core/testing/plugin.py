"""The pytest plugin of the conformance kit (entry point ``pytest11``, name ``bestiary``).

pytest loads it in every session wherever bestiary is installed, so it stays idle until asked: no
torch and no bestiary plugin loading at import or configure time. It offers:

- ``--bestiary-conformance[=PATTERN]``: add one test per registered entry matching ``PATTERN``
  (comma-separated names or fnmatch patterns, bare or ``plugin:name``, optionally ``kind/``
  first; default: every entry). Write it with ``=``: a separate word is taken for a test path.
- the ``bestiary_entry`` fixture: a test taking it runs once per entry, chosen by the marker
  ``@pytest.mark.bestiary_conformance(kind=None, pattern=None, plugin=..., task=..., tag=...,
  exclude=...)`` (every entry without the marker).
- :func:`bestiary.testing.conformance_tests`, which needs none of the above.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from ..registry import Entry

FIXTURE = "bestiary_entry"
MARKER = "bestiary_conformance"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("bestiary", "bestiary conformance kit")
    group.addoption(
        "--bestiary-conformance",
        dest="bestiary_conformance",
        nargs="?",
        const="",
        default=None,
        metavar="PATTERN",
        help="also check every registered bestiary entry matching PATTERN (comma-separated names or "
        "fnmatch patterns, e.g. 'myzoo:*' or 'architectures/resnet*'; default: all). "
        "Write it as --bestiary-conformance=PATTERN.",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        f"{MARKER}(kind=None, pattern=None, *, plugin=None, task=None, tag=None, exclude=None): run a test "
        f"taking the {FIXTURE} fixture once per matching bestiary entry",
    )


def _parametrized(metafunc: pytest.Metafunc) -> bool:
    for mark in metafunc.definition.iter_markers("parametrize"):
        names = mark.args[0] if mark.args else mark.kwargs.get("argnames", ())
        if isinstance(names, str):
            names = [n.strip() for n in names.split(",")]
        if FIXTURE in names:
            return True
    return False


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if FIXTURE not in metafunc.fixturenames or _parametrized(metafunc):
        return
    from .select import entry_ids, select_entries  # loads bestiary's plugins: only for tests that ask

    marker = metafunc.definition.get_closest_marker(MARKER)
    entries = select_entries(*marker.args, **marker.kwargs) if marker else select_entries()
    metafunc.parametrize(FIXTURE, entries, ids=entry_ids(entries), indirect=True)


@pytest.fixture
def bestiary_entry(request: pytest.FixtureRequest) -> Entry:
    """A registered bestiary entry; a test taking it runs once per entry (see the module doc)."""
    from .select import current

    return current(request.param)


class ConformanceItem(pytest.Item):
    """The conformance check of one entry, added by ``--bestiary-conformance``."""

    def __init__(self, *, entry: Entry, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.entry = entry

    def runtest(self) -> None:
        from .select import run_check

        run_check(self.entry)

    def reportinfo(self) -> tuple[Any, int | None, str]:
        return self.path, None, f"bestiary conformance: {self.name}"


class ConformanceCollector(pytest.Collector):
    """Parent of the items ``--bestiary-conformance`` adds (they come from the registry, not a file)."""

    def collect(self) -> list[pytest.Item]:
        from ..registry import singular
        from .select import select_entries

        pattern = self.config.getoption("bestiary_conformance")
        return [
            ConformanceItem.from_parent(self, name=f"{singular(e.kind)}[{e.qualified_name}]", entry=e)
            for e in select_entries(pattern=pattern or None)
        ]


@pytest.hookimpl(tryfirst=True)  # before -k / -m deselect, so they apply to these items too
def pytest_collection_modifyitems(
    session: pytest.Session, config: pytest.Config, items: list[pytest.Item]
) -> None:
    if config.getoption("bestiary_conformance", None) is None:
        return
    collector = ConformanceCollector.from_parent(
        session, name="bestiary-conformance", nodeid="bestiary-conformance"
    )
    added: list[pytest.Item | pytest.Collector] = [*collector.collect()]
    # Reported like a collected file, so "collected N items" and --collect-only count them.
    config.hook.pytest_collectreport(report=pytest.CollectReport(collector.nodeid, "passed", None, added))
    items.extend(item for item in added if isinstance(item, pytest.Item))
