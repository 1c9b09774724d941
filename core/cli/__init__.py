"""The ``bestiary`` command line.

Subcommands are imported only when invoked, so ``bestiary list`` pays for nothing else. Errors
that users can fix print one line on stderr with the remedy: exit code 2 for usage errors, bad
config values and unknown names, 1 for other failures (``BESTIARY_DEBUG=1`` shows tracebacks).
"""

from __future__ import annotations

import importlib
import os
from typing import Any

import click

from .._version import __version__
from ..errors import CheckpointError, ConfigError, TaskMismatchError
from ..host import ENV_STRICT, PluginLoadError, get_host
from ..options import RUN_COMMANDS
from ..registry import LookupFailure

#: Subcommand name -> "module:attribute" under bestiary.cli, imported on use.
COMMANDS = {
    "list": "catalog:list_command",
    "info": "catalog:info_command",
    "plugins": "plugins:plugins_group",
    "runs": "runs:runs_group",
    "train": "train:train_command",
    "evaluate": "train:evaluate_command",
    "predict": "train:predict_command",
    "debug": "debug:debug_command",
    "bench": "bench:bench_group",
    "tune": "tune:tune_command",
    "autopilot": "autopilot:autopilot_command",
}


class NameProblem(click.ClickException):
    """An unknown or ambiguous name: a usage error (exit 2) without the usage banner."""

    exit_code = 2


class BestiaryGroup(click.Group):
    """A group whose commands load lazily and whose known errors become clean CLI errors.

    Plugins add commands (hook ``add_commands``), asked once when a name is not bestiary's own or
    the commands are listed; the commands that start runs get the options plugins declare (hook
    ``add_options``) when they are first used.
    """

    _asked: object = None  # the host whose plugins gave the commands (tests swap hosts)
    _added: tuple[str, ...] = ()

    def _plugin_commands(self) -> None:
        host = get_host()
        if self._asked is host:
            return
        pm = host.pm  # strict mode raises here, before anything is marked as asked
        for name in self._added:
            self.commands.pop(name, None)
        self._asked, mine = host, dict(self.commands)
        for impl in reversed(pm.hook.add_commands.get_hookimpls()):  # load order: the first name wins
            before = dict(self.commands)
            try:
                impl.function(cli=self)
            except Exception as exc:  # noqa: BLE001  # one plugin must not take the CLI down
                import logging

                logging.getLogger("bestiary").warning(
                    "bestiary: commands of plugin %r left out: add_commands raised %s: %s",
                    pm.get_name(impl.plugin), type(exc).__name__, exc)
            for name, command in list(self.commands.items()):  # a taken name keeps its command
                if name in before and before[name] is not command:
                    self.commands[name] = before[name]
                elif name in COMMANDS and name not in before:
                    del self.commands[name]
        self._added = tuple(n for n in self.commands if n not in mine)

    def list_commands(self, ctx: click.Context) -> list[str]:
        try:
            self._plugin_commands()
        except PluginLoadError:
            pass  # strict mode: --help still lists bestiary's own; running a command reports the failure
        return sorted({*COMMANDS, *self.commands})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = COMMANDS.get(cmd_name)
        if target is None:
            self._plugin_commands()  # asks the plugins once per host
            return self.commands.get(cmd_name)
        module, _, attr = target.partition(":")
        command: click.Command = getattr(importlib.import_module(f"{__name__}.{module}"), attr)
        if cmd_name in RUN_COMMANDS:
            from .options import add_plugin_options

            add_plugin_options(command, cmd_name)
        return command

    def resolve_command(self, ctx: click.Context, args: list[str]) -> Any:
        name = args[0] if args else ""
        if args and self.get_command(ctx, name) is None and not name.startswith("-"):
            import difflib

            close = difflib.get_close_matches(name, self.list_commands(ctx), n=3)
            hint = f" Did you mean: {', '.join(close)}?" if close else ""
            raise click.UsageError(f"no such command {name!r}.{hint} See `bestiary --help`.", ctx)
        return super().resolve_command(ctx, args)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (LookupFailure, ConfigError, TaskMismatchError) as exc:
            raise NameProblem(str(exc)) from exc
        except (CheckpointError, OSError, ImportError, ValueError) as exc:
            if os.environ.get("BESTIARY_DEBUG"):
                raise
            raise click.ClickException(f"{exc} (set BESTIARY_DEBUG=1 for the traceback)") from exc
        except PluginLoadError as exc:
            raise click.ClickException(str(exc)) from exc


@click.group(cls=BestiaryGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="bestiary")
@click.option(
    "--strict-plugins",
    is_flag=True,
    help=f"Fail when any plugin fails to load (also {ENV_STRICT}=1).",
)
def main(strict_plugins: bool) -> None:
    """bestiary: a plugin-based model zoo for PyTorch.

    List what the installed plugins offer with `bestiary list`, look one entry up with
    `bestiary info NAME`, and check plugins with `bestiary plugins`.
    """
    if strict_plugins:
        os.environ[ENV_STRICT] = "1"  # inherited by worker processes too
        get_host().strict = True


def console() -> Any:
    """A rich console for tables; wide when output is not a terminal, so piped tables stay readable."""
    # rich only for people: --json never pays for it.
    from rich.console import Console

    out = Console()
    return out if out.is_terminal else Console(width=200)
