"""Click options generated from :class:`RunConfig`, shared by every command that starts runs.

One option per scalar config field (``--batch-size``, ``--max-steps``, ``--compile/--no-compile``),
with the field's documentation as help, so the CLI never drifts from the config.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import click

from ..engine.config import MODES, MOVED, OPTIMIZERS, PRECISIONS, SCHEDULES, RunConfig, field_docs

#: Fields set by positional arguments, tables, or dedicated options of the commands.
SKIP = {"arch", "model", "data", "metrics", "strategy_options", "options"}
_CLICK_TYPES = {"int": int, "float": float, "str": str}
_CHOICES = {"optimizer": OPTIMIZERS, "schedule": SCHEDULES, "precision": PRECISIONS, "mode": MODES}


def config_fields() -> list[dataclasses.Field[Any]]:
    return [f for f in dataclasses.fields(RunConfig) if f.name not in SKIP]


def run_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """Add the config options, ``--config FILE``, ``--set key=value`` and ``--metric``."""
    docs = field_docs()
    for f in reversed(config_fields()):
        kind = str(f.type).replace(" | None", "")
        flag = "--" + f.name.replace("_", "-")
        help_text = docs.get(f.name, "")
        if kind == "bool":
            option = click.option(f"{flag}/--no-{flag[2:]}", f.name, default=None, help=help_text)
        else:
            kind_type = click.Choice(_CHOICES[f.name]) if f.name in _CHOICES else _CLICK_TYPES[kind]
            option = click.option(flag, f.name, type=kind_type, default=None, help=help_text)
        func = option(func)
    func = click.option("--metric", "metrics", multiple=True, help="Metric to report (repeatable); default: the task's.")(func)
    func = click.option("--set", "sets", multiple=True, metavar="KEY=VALUE",
                        help="Set any config field, e.g. --set model.drop_rate=0.1 (repeatable).")(func)
    func = click.option("--config", "config_file", type=click.Path(exists=True, dir_okay=False),
                        help="TOML file with config fields; flags override it.")(func)
    return func


#: Marks the click options made from plugin declarations, so a command gets them once.
_ADDED = "_bestiary_plugin_options"


def add_plugin_options(command: click.Command, name: str) -> None:
    """Give ``command`` a flag for each option plugins declare for ``name`` (once per command).

    A flag that the command already has is left out, with a warning naming the plugin.
    """
    from ..host import get_host

    host = get_host()
    if getattr(command, _ADDED, None) is host:
        return
    setattr(command, _ADDED, host)  # tests swap hosts: the options follow the current one
    command.params = [p for p in command.params if not (p.name or "").startswith("opt__")]
    taken = {opt for p in command.params for opt in (*p.opts, *p.secondary_opts)}
    for spec in host.options():
        if name not in spec.commands or spec.type == "dict":  # a table is set in a file or with --set
            continue
        flag = spec.cli_flag
        if flag in taken:
            import logging

            logging.getLogger("bestiary").warning(
                "bestiary: option %s.%s of plugin %r left out of `%s`: %s is taken; set it with "
                "--set %s.%s=VALUE", spec.table, spec.name, spec.plugin, name, flag, spec.table, spec.name)
            continue
        taken.add(flag)
        help_text = f"{spec.help} [options.{spec.table}.{spec.name}]".strip()
        if spec.type == "bool":
            option = click.Option([f"{flag}/--no-{flag[2:]}", spec.param], default=None, help=help_text)
        else:
            kind = click.Choice([str(c) for c in spec.choices]) if spec.choices else _CLICK_TYPES[spec.type]
            option = click.Option([flag, spec.param], type=kind, default=None, help=help_text,
                                  multiple=spec.multiple)
        command.params.append(option)


def plugin_sets(sets: list[str], tables: set[str]) -> list[str]:
    """``--set TABLE.KEY=VALUE`` of a plugin's options table becomes ``options.TABLE.KEY=VALUE``
    (a table named like a config field, ``model``, keeps meaning the field). A key that moved from
    the config into a plugin's table (``--set rules=default``, ``--set rule_options.R.P=V``) goes there.
    """
    tables = tables - {f.name for f in dataclasses.fields(RunConfig)}
    out = []
    for item in sets:
        head = item.partition("=")[0].split(".", 1)[0].strip()
        if head in MOVED:
            out.append(f"options.{MOVED[head]}.{item.strip()}")
        else:
            out.append(f"options.{item.strip()}" if head in tables else item)
    return out


def build_config(arch: str | None, options: dict[str, Any]) -> RunConfig:
    """A validated RunConfig from the command's arguments (file, then flags, then --set).

    Plugin options (flags, ``[options.TABLE]`` in the file, ``--set TABLE.KEY=VALUE``) are checked
    against the declarations, and declared defaults filled in.
    """
    from ..options import complete_options, declared_options

    overrides = {f.name: options.pop(f.name, None) for f in config_fields()}
    overrides["arch"] = arch
    metrics = options.pop("metrics", ())
    if metrics:
        overrides["metrics"] = list(metrics)
    specs = declared_options()
    given: dict[str, dict[str, Any]] = {}
    for spec in specs:
        value = options.pop(spec.param, None)
        if value is not None and value != ():  # a repeatable flag not given is ()
            given.setdefault(spec.table, {})[spec.name] = value
    sets = plugin_sets(list(options.pop("sets", ())), {s.table for s in specs})
    config = RunConfig.load(options.pop("config_file", None), overrides, sets)
    merged = {t: dict(v) for t, v in config.options.items()}
    for table, values in given.items():  # flags win over the file; --set wins over both
        for key, value in values.items():
            if not any(s.startswith(f"options.{table}.{key}=") for s in sets):
                merged.setdefault(table, {})[key] = list(value) if isinstance(value, tuple) else value
    return config.replace(options=complete_options(merged, specs))
