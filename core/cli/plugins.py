"""``bestiary plugins``: show, install and uninstall plugins."""

from __future__ import annotations

import json
import subprocess
import sys

import click

from ..host import get_host
from . import console as make_console


@click.group("plugins", invoke_without_command=True)
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array.")
@click.pass_context
def plugins_group(ctx: click.Context, as_json: bool) -> None:
    """Show every plugin: distribution, version, hooks, entries per kind and status."""
    if ctx.invoked_subcommand is not None:
        return
    host = get_host()
    records = host.plugins
    if as_json:
        click.echo(json.dumps([r.to_dict() for r in records], indent=2))
    else:
        _print_plugins(records)
    host.load()  # in strict mode, fail (exit 1) after showing what failed


def _print_plugins(records: list) -> None:
    # rich only for people: --json never pays for it.
    from rich.table import Table

    console = make_console()
    table = Table(title=f"plugins ({len(records)})", title_justify="left")
    for column in ("name", "distribution", "version", "source", "entries", "hooks", "status"):
        table.add_column(column, overflow="fold")
    for r in records:
        entries = ", ".join(f"{k}: {n}" for k, n in r.entries.items()) or "-"
        style = {"ok": "green", "blocked": "yellow"}.get(r.status, "red")
        table.add_row(
            r.name,
            r.distribution,
            r.version,
            r.source,
            entries,
            ", ".join(r.hooks) or "-",
            f"[{style}]{r.status_text}[/{style}]",
        )
    console.print(table)
    if not records:
        console.print("no plugins loaded; install one with `bestiary plugins install PACKAGE`")


def _pip(*args: str) -> None:
    # The same interpreter as bestiary, so the plugin lands where bestiary looks.
    code = subprocess.call([sys.executable, "-m", "pip", *args])
    if code:
        raise click.ClickException(f"pip exited with status {code}")


@plugins_group.command("install")
@click.argument("packages", nargs=-1)
@click.option("-U", "--upgrade", is_flag=True, help="Upgrade packages to the latest version.")
@click.option("-e", "--editable", help="Install a project in editable mode from this path.")
@click.option("--force-reinstall", is_flag=True, help="Reinstall even if already installed.")
@click.option("--no-cache-dir", is_flag=True, help="Do not use pip's cache.")
@click.option("--no-deps", is_flag=True, help="Do not install the packages' dependencies.")
@click.option(
    "--no-build-isolation",
    is_flag=True,
    help="Build source packages with the build tools already installed (offline installs).",
)
def install_command(
    packages: tuple[str, ...],
    upgrade: bool,
    editable: str | None,
    force_reinstall: bool,
    no_cache_dir: bool,
    no_deps: bool,
    no_build_isolation: bool,
) -> None:
    """Install plugin PACKAGES with pip into bestiary's own environment."""
    if not packages and not editable:
        raise click.UsageError("name at least one package, or a path with -e")
    args = ["install", *packages]
    if editable:
        args += ["--editable", editable]
    args += [flag for flag, on in (("--upgrade", upgrade), ("--force-reinstall", force_reinstall),
                                   ("--no-cache-dir", no_cache_dir), ("--no-deps", no_deps),
                                   ("--no-build-isolation", no_build_isolation)) if on]
    _pip(*args)
    click.echo("installed; run `bestiary plugins` to check that the plugin loads", err=True)


@plugins_group.command("uninstall")
@click.argument("packages", nargs=-1, required=True)
def uninstall_command(packages: tuple[str, ...]) -> None:
    """Uninstall plugin PACKAGES from bestiary's environment."""
    _pip("uninstall", "--yes", *packages)
