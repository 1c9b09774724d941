"""The ``bestiary`` command line.

Subcommands are imported only when invoked, so ``bestiary list`` pays for nothing else. Errors
that users can fix (:class:`~bestiary.errors.UserError` and its kin, see :func:`user_error`) print
one line on stderr with the remedy: exit code 2 for usage errors, bad config values and unknown
names, 1 for other failures. Anything else is a bug: its traceback is shown, with a note on how to
report it. ``--debug`` (or ``BESTIARY_DEBUG=1``) shows the traceback of user errors too.
"""

from __future__ import annotations

import importlib
import os
from typing import Any

import click

from .._version import __version__
from ..errors import UserError, storage_error
from ..host import ENV_STRICT, PluginLoadError, get_host
from ..options import RUN_COMMANDS
from ..registry import EntryLoadError, LookupFailure

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


ENV_DEBUG = "BESTIARY_DEBUG"


class NameProblem(click.ClickException):
    """An unknown or ambiguous name: a usage error (exit 2) without the usage banner."""

    exit_code = 2


def user_error(exc: BaseException) -> Exception | None:
    """``exc`` as an error the user can fix, or ``None`` when it is a bug.

    User errors are :class:`~bestiary.errors.UserError` (config, data, checkpoint, model file,
    storage, missing dependency), registry lookup failures, factories and plugins that failed to
    load (the remedy: reinstall them), OSErrors
    of the user's files and machine (a full disk, a read-only folder, a missing path: see
    :data:`~bestiary.errors.STORAGE_REMEDIES`) and a missing third-party module. A plain
    ``ValueError``, ``TypeError``, ``RuntimeError``, ... is a bug, even from a plugin: plugins
    raise ``bestiary.extend.ConfigError``/``DataError`` for bad input.
    """
    if isinstance(exc, (UserError, LookupFailure, EntryLoadError, PluginLoadError)):
        return exc
    if isinstance(exc, OSError):
        return storage_error(exc)
    if isinstance(exc, ModuleNotFoundError) and exc.name and exc.name.split(".")[0] != "bestiary":
        from ..errors import MissingDependencyError

        top = exc.name.split(".")[0]
        return MissingDependencyError(f"the package that provides the module {top!r} is not installed: "
                                      f"install it (pip install {top}) or check the plugin that needs it")
    return None


def _debugging() -> bool:
    return os.environ.get(ENV_DEBUG, "") not in ("", "0")


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
        except (click.exceptions.ClickException, click.exceptions.Exit, click.exceptions.Abort):
            raise
        except Exception as exc:
            known = user_error(exc)
            if known is None:
                exc.add_note(f"bestiary: this is a bug (an unexpected {type(exc).__name__}), not an error in your input: "
                             "please report it with this traceback and the output of `bestiary plugins` to the "
                             "maintainers of the package its last frames point into (bestiary or a plugin)")
                raise
            if _debugging():
                import traceback

                traceback.print_exception(exc)
            code = getattr(known, "exit_code", 2 if isinstance(known, LookupFailure) else 1)
            # Click prints ``Error: MESSAGE``; NameProblem is its exit-2 kind without the usage banner
            raise (NameProblem if code == 2 else click.ClickException)(str(known)) from exc


@click.group(cls=BestiaryGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="bestiary")
@click.option(
    "--strict-plugins",
    is_flag=True,
    help=f"Fail when any plugin fails to load (also {ENV_STRICT}=1).",
)
@click.option("--debug", is_flag=True, help=f"Show the traceback of every error, user errors too (also {ENV_DEBUG}=1).")
def main(strict_plugins: bool, debug: bool) -> None:
    """bestiary: a plugin-based model zoo for PyTorch.

    List what the installed plugins offer with `bestiary list`, look one entry up with
    `bestiary info NAME`, and check plugins with `bestiary plugins`.
    """
    if strict_plugins:
        os.environ[ENV_STRICT] = "1"  # inherited by worker processes too
        get_host().strict = True
    if debug:
        os.environ[ENV_DEBUG] = "1"  # inherited by worker processes too


def console() -> Any:
    """A rich console for tables; wide when output is not a terminal, so piped tables stay readable."""
    # rich only for people: --json never pays for it.
    from rich.console import Console

    out = Console()
    return out if out.is_terminal else Console(width=200)
