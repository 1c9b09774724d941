"""Click options generated from :class:`RunConfig`, shared by every command that starts runs.

One option per scalar config field (``--batch-size``, ``--max-steps``, ``--compile/--no-compile``),
with the field's documentation as help, so the CLI never drifts from the config.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import click

from ..engine.config import MODES, OPTIMIZERS, PRECISIONS, SCHEDULES, RunConfig, field_docs

#: Fields set by positional arguments, tables, or dedicated options of the commands.
SKIP = {"arch", "model", "data", "metrics", "strategy_options", "rule_options"}
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


def build_config(arch: str | None, options: dict[str, Any]) -> RunConfig:
    """A validated RunConfig from the command's arguments (file, then flags, then --set)."""
    overrides = {f.name: options.pop(f.name, None) for f in config_fields()}
    overrides["arch"] = arch
    metrics = options.pop("metrics", ())
    if metrics:
        overrides["metrics"] = list(metrics)
    return RunConfig.load(options.pop("config_file", None), overrides, list(options.pop("sets", ())))
