"""Run options that plugins declare (hook ``add_options``), kept in the run config's ``options``.

A plugin declares an option with a name, a type, a default and the commands that take it; the
CLI turns each into a flag of those commands, and the value lands in ``config.options[table][name]``
(TOML ``[options.<table>]``). :func:`complete_options` checks a config's tables against the
declarations (unknown tables and keys fail with close matches, values are coerced to the declared
type) and fills in the declared defaults. This module imports neither click nor torch.
"""

from __future__ import annotations

import dataclasses
import difflib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from .errors import ConfigError

#: Declared types and the Python values they take. A ``dict`` option is a table (TOML
#: ``[options.<table>.<name>]``, ``--set <table>.<name>.KEY=VALUE``) and gets no flag.
TYPES: dict[str, tuple[type, ...]] = {"str": (str,), "int": (int,), "float": (int, float), "bool": (bool,),
                                      "dict": (dict,)}
#: Commands that start runs, the ones plugin options can join.
RUN_COMMANDS = ("train", "tune", "autopilot")
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


class AddOption(Protocol):
    """The callback the ``add_options`` hook receives."""

    def __call__(
        self,
        name: str,
        *,
        type: str = "str",
        default: Any = None,
        help: str = "",
        commands: Iterable[str] = ("train", "tune"),
        table: str | None = None,
        flag: str | None = None,
        choices: Iterable[Any] | None = None,
        multiple: bool = False,
    ) -> None: ...


@dataclass(frozen=True)
class OptionSpec:
    """One declared option.

    :param name: lower-snake key in the table.
    :param table: the options table (default: the declaring plugin's name).
    :param type: ``str``, ``int``, ``float``, ``bool`` or ``dict`` (a table, set in a config file or
        with ``--set``; no flag).
    :param default: the value when none is given; ``None``: left out of the config.
    :param help: one line for ``--help``.
    :param commands: the commands with the flag (``train``, ``tune``, ``autopilot``).
    :param flag: the flag, default ``--<name with dashes>``; a bool gets ``--no-...`` too.
    :param choices: the allowed values, if limited.
    :param multiple: a list of values (the flag repeats); the default, if any, is a list.
    :param plugin: the declaring plugin.
    """

    name: str
    table: str
    type: str = "str"
    default: Any = None
    help: str = ""
    commands: tuple[str, ...] = ("train", "tune")
    flag: str | None = None
    choices: tuple[Any, ...] | None = None
    plugin: str = ""
    multiple: bool = False

    @property
    def cli_flag(self) -> str:
        return self.flag or "--" + self.name.replace("_", "-")

    @property
    def param(self) -> str:
        """The keyword name the command receives the value under."""
        return f"opt__{self.table}__{self.name}"

    def coerce(self, value: Any) -> Any:
        """``value`` as the declared type (``"3"`` for an int is 3), or a :class:`ConfigError`."""
        if value is None:
            return None
        if self.multiple:
            if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)):
                value = [value]
            return [self._one(v) for v in value]
        return self._one(value)

    def _one(self, value: Any) -> Any:
        if self.type in ("int", "float") and isinstance(value, str):
            try:
                value = int(value) if self.type == "int" else float(value)
            except ValueError:
                pass
        if self.type == "bool" and isinstance(value, str) and value.lower() in ("true", "false", "1", "0"):
            value = value.lower() in ("true", "1")
        if self.type == "float" and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        ok = isinstance(value, TYPES[self.type]) and not (self.type != "bool" and isinstance(value, bool))
        if not ok:
            how = (f"--set {self.table}.{self.name}.KEY=VALUE" if self.type == "dict"
                   else f"{self.cli_flag} or --set {self.table}.{self.name}=VALUE")
            raise ConfigError(f"option {self.table}.{self.name} takes a {self.type}, got {value!r} ({how})")
        if self.choices is not None and value not in self.choices:
            raise ConfigError(f"option {self.table}.{self.name} must be one of "
                              f"{', '.join(map(str, self.choices))}, got {value!r}")
        return value


def make_add(plugin: str, out: list[OptionSpec], problems: list[str]) -> AddOption:
    """The ``add`` callback for one plugin's ``add_options`` hook, appending to ``out``."""

    def add(name: str, *, type: str = "str", default: Any = None, help: str = "",
            commands: Iterable[str] = ("train", "tune"), table: str | None = None, flag: str | None = None,
            choices: Iterable[Any] | None = None, multiple: bool = False) -> None:
        table = table or plugin
        cmds = tuple(commands)
        if not _NAME.match(name) or not _NAME.match(table):
            problems.append(f"option {table}.{name}: names are lower-snake (letters, digits, '_')")
        elif type not in TYPES:
            problems.append(f"option {table}.{name}: type {type!r} is not one of {', '.join(TYPES)}")
        elif unknown := [c for c in cmds if c not in RUN_COMMANDS]:
            problems.append(f"option {table}.{name}: commands {unknown} are not among {', '.join(RUN_COMMANDS)}")
        elif type == "dict" and (multiple or choices is not None or flag is not None):
            problems.append(f"option {table}.{name}: a dict option takes no multiple, choices or flag")
        else:
            spec = OptionSpec(name, table, type, None, help, cmds, flag,
                              tuple(choices) if choices is not None else None, plugin, bool(multiple))
            try:
                out.append(dataclasses.replace(spec, default=spec.coerce(default)))
            except ConfigError as exc:
                problems.append(f"default of {exc}")

    return add


def declared_options() -> list[OptionSpec]:
    """Every option the loaded plugins declare, in load order."""
    from .host import get_host

    return get_host().options()


def _close(word: str, known: Iterable[str]) -> str:
    close = difflib.get_close_matches(word, list(known), n=3)
    return f" Did you mean: {', '.join(close)}?" if close else ""


def complete_options(given: Mapping[str, Any], specs: Iterable[OptionSpec] | None = None) -> dict[str, dict[str, Any]]:
    """The config's ``options`` checked against the declarations, coerced, with defaults filled in.

    :param given: ``{table: {name: value}}`` from the config file, flags and ``--set``.
    :param specs: the declarations (default: those of the loaded plugins).
    :raises ConfigError: for a table or key that no plugin declares, naming close matches.
    """
    specs = declared_options() if specs is None else list(specs)
    tables: dict[str, dict[str, OptionSpec]] = {}
    for spec in specs:
        tables.setdefault(spec.table, {})[spec.name] = spec
    out: dict[str, dict[str, Any]] = {}
    for table, values in given.items():
        if table not in tables:
            raise ConfigError(_not_loaded(table) or f"no plugin declares the options table {table!r}."
                              f"{_close(table, tables)} Tables: {', '.join(sorted(tables)) or 'none'} "
                              "(see `bestiary plugins`)")
        if not isinstance(values, Mapping):
            raise ConfigError(f"options.{table} must be a table of options, got {values!r}")
        for key, value in values.items():
            if key not in tables[table]:
                raise ConfigError(f"unknown option {table}.{key}.{_close(key, tables[table])} "
                                  f"Options of {table!r}: {', '.join(sorted(tables[table]))}")
            out.setdefault(table, {})[key] = tables[table][key].coerce(value)
    for table, declared in tables.items():
        for name, spec in declared.items():
            if spec.default is not None:
                out.setdefault(table, {}).setdefault(name, spec.default)
            if table in out and out[table].get(name, 0) is None:
                del out[table][name]  # TOML has no null: an unset option is absent
    return {t: v for t, v in out.items() if v}


def _not_loaded(table: str) -> str | None:
    """The error for a table of a plugin that did not load (tables default to the plugin's name)."""
    from .host import ENV_DISABLE, get_host

    info = next((p for p in get_host().plugins if p.name == table), None)
    if info is None or info.status == "ok":
        return None
    why = (f"it is blocked ({ENV_DISABLE}); unblock it" if info.status == "blocked"
           else f"it failed to load ({info.error}); fix it (see `bestiary plugins`)")
    from .engine.config import MOVED  # pure Python: the old top-level keys that now live in tables

    old = [key for key, owner in MOVED.items() if owner == table]
    where = f"[options.{table}]" + (f" (or the old top-level {', '.join(old)})" if old else "")
    return (f"the options table {table!r} belongs to {info.describe()}, which is not loaded: {why}, "
            f"or remove {where} from the config")


def option_value(config: Any, table: str, name: str, default: Any = None) -> Any:
    """``config.options[table][name]``, or ``default`` when the config does not hold it.

    :param config: a :class:`bestiary.engine.config.RunConfig` (or anything with ``options``).
    """
    options = getattr(config, "options", None) or {}
    return options.get(table, {}).get(name, default)
