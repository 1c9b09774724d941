"""``bestiary list`` and ``bestiary info``."""

from __future__ import annotations

import json
from typing import Any

import click

from ..host import get_host
from ..registry import Entry, UnknownEntryError, singular
from . import NameProblem
from . import console as make_console


@click.command("list")
@click.argument("kind", required=False)
@click.argument("patterns", nargs=-1)
@click.option("--exclude", "-x", multiple=True, help="fnmatch pattern to leave out (repeatable).")
@click.option("--task", help="Only entries of this task.")
@click.option("--tag", help="Only entries with this tag.")
@click.option("--plugin", help="Only entries from this plugin.")
@click.option("--all", "show_all", is_flag=True,
              help="Also list entries plugins offer on request (every timm model as timm:<name>, ...).")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array.")
def list_command(
    kind: str | None,
    patterns: tuple[str, ...],
    exclude: tuple[str, ...],
    task: str | None,
    tag: str | None,
    plugin: str | None,
    show_all: bool,
    as_json: bool,
) -> None:
    """List entries of KIND (all kinds when omitted) whose names match PATTERNS.

    KIND is plural or singular (architectures, architecture); PATTERNS are fnmatch patterns
    on the bare name, or on the qualified name when they contain ':', e.g.
    `bestiary list architectures 'resnet*'` or `bestiary list architectures 'vision:*'`.
    """
    registry = get_host().registry
    tables = [registry.table(kind)] if kind else list(registry)
    entries = [
        e
        for t in tables
        for e in t.select(list(patterns) or None, list(exclude) or None, task=task, tag=tag, plugin=plugin,
                          dynamic=show_all or any(":" in p for p in patterns))
    ]
    if as_json:
        click.echo(json.dumps([e.to_dict() for e in entries], indent=2))
        return
    _print_entries(entries, [t.kind for t in tables])


def _print_entries(entries: list[Entry], kinds: list[str]) -> None:
    # rich only for people: --json never pays for it.
    from rich.table import Table

    console = make_console()
    ambiguous = _ambiguous_names(entries)
    for kind in kinds:
        rows = [e for e in entries if e.kind == kind]
        if not rows:
            continue
        table = Table(title=f"{kind} ({len(rows)})", title_justify="left")
        for column in ("name", "task", "plugin", "description"):
            table.add_column(column, overflow="fold")
        for e in rows:
            name = e.qualified_name if (e.kind, e.name) in ambiguous else e.name
            table.add_row(name, e.task or "-", e.provenance.plugin, e.description)
        console.print(table)
    if not entries and any(len(get_host().registry.table(k)) for k in kinds):
        console.print("no entries match these filters; drop them to see every entry", style="yellow")
    elif not entries:
        console.print("no entries; install plugins with `bestiary plugins install PACKAGE`", style="yellow")


def _ambiguous_names(entries: list[Entry]) -> set[tuple[str, str]]:
    seen: dict[tuple[str, str], int] = {}
    for e in entries:
        seen[(e.kind, e.name)] = seen.get((e.kind, e.name), 0) + 1
    return {k for k, n in seen.items() if n > 1}


@click.command("info")
@click.argument("name")
@click.option("--kind", "-k", help="Kind to search (needed when NAME exists in several kinds).")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON object.")
def info_command(name: str, kind: str | None, as_json: bool) -> None:
    """Show everything known about the entry NAME (bare or plugin:name)."""
    registry = get_host().registry
    if kind:
        entry = registry.table(kind).get(name)
    else:
        found = registry.find(name)
        kinds = sorted({e.kind for e in found})
        if not found:
            suggestions = [f"{singular(t.kind)} {s}" for t in registry for s in t.suggest(name, 3)]
            raise UnknownEntryError("entries", name, suggestions[:5], list_command="bestiary list")
        if len(kinds) > 1:
            raise NameProblem(
                f"{name!r} names entries of several kinds ({', '.join(kinds)}); "
                f"pass --kind, for example `bestiary info {name} --kind {kinds[0]}`"
            )
        entry = registry.table(kinds[0]).get(name)
    data = entry.to_dict()
    if as_json:
        click.echo(json.dumps(data, indent=2))
        return
    _print_info(data)


def _print_info(data: dict[str, Any]) -> None:
    from rich.table import Table

    table = Table(show_header=False, title=data["qualified_name"], title_justify="left")
    table.add_column(style="bold")
    table.add_column(overflow="fold")
    for key, value in data.items():
        if isinstance(value, (dict, list)):
            value = json.dumps(value) if value else "-"
        table.add_row(key, "-" if value is None else str(value))
    make_console().print(table)
