"""Search spaces of a run: an architecture entry's ``search_space``, optionally overridden by a TOML
file, checked against the run config's fields, and trial parameters applied to a run config.

The space is a :class:`bestiary.registry.space.SearchSpace`: its grid, optuna distributions and
SageMaker ranges come from that one type, so every tuner searches the same space. Keys are
run-config fields (``lr``, ``batch_size``, ``weight_decay``) or factory options of a table field
(``model.drop_path_rate``, ``data.context_length``, ``strategy_options.bucket_cap_mb``).
"""

from __future__ import annotations

import dataclasses
import difflib
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..registry import Entry
from ..registry.space import SearchSpace

#: Config fields holding factory options: ``model.X`` sets ``config.model["X"]``.
TABLES = ("model", "data", "strategy_options")
#: Config fields a search space may not vary: they name the run rather than tune it.
FIXED = ("arch", "dataset", "run_dir", "runs_root", "quiet", "metrics", "monitor", "mode", "device")


def load_space_file(path: str | Path, base: Mapping[str, Any] | None = None) -> dict[str, dict[str, Any]]:
    """Read a search-space TOML file: one table per parameter.

    ``inherit = true`` at the top starts from ``base`` (the entry's space) instead of replacing it,
    and ``exclude = ["lr"]`` drops parameters (so a flag such as ``--lr`` holds for all trials)::

        inherit = true
        exclude = ["batch_size"]
        [lr]
        type = "float"
        low = 1e-4
        high = 1e-2
        log = true
        ["model.drop_path_rate"]
        type = "float"
        low = 0.0
        high = 0.3

    :param path: the TOML file.
    :param base: the space ``inherit`` starts from.
    :return: the space as plain JSON values.
    """
    try:
        raw = tomllib.loads(Path(path).read_text())
    except FileNotFoundError as exc:
        raise ConfigError(f"search space file {path} does not exist") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"search space file {path} is not valid TOML: {exc}") from exc
    inherit = raw.pop("inherit", False)
    exclude = raw.pop("exclude", [])
    if not isinstance(inherit, bool) or not isinstance(exclude, list):
        raise ConfigError(f"{path}: 'inherit' must be true or false and 'exclude' a list of parameter names")
    space = dict(base or {}) if inherit else {}
    space.update(raw)
    for name in exclude:
        if name not in space:
            raise ConfigError(f"{path}: exclude names {name!r}, which is not in the space ({', '.join(sorted(space)) or 'empty'})")
        del space[name]
    return space


def check_space(space: Mapping[str, Any] | SearchSpace, where: str = "search space") -> SearchSpace:
    """The parsed space: malformed parameters and keys that are no config field a search may vary
    are refused, naming the remedy."""
    from ..engine.config import RunConfig  # pure Python, but keeps this module's import cheap

    parsed = SearchSpace.parse(space, where, error=ConfigError)
    fields = {f.name for f in dataclasses.fields(RunConfig)}
    for key in parsed.names:
        head, dot, _ = key.partition(".")
        if dot and head not in TABLES:
            raise ConfigError(f"{where}: {key!r}: only {', '.join(t + '.<option>' for t in TABLES)} take a dotted name")
        if not dot and (key not in fields or key in FIXED or key in TABLES):
            close = difflib.get_close_matches(key, sorted(fields - set(FIXED) - set(TABLES)), n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise ConfigError(f"{where}: {key!r} is not a config field a search may vary.{hint} "
                              "Use run-config fields (see docs/config.md) or model.<factory option>")
    return parsed


def space_of(entry: Entry, space_file: str | Path | None = None) -> SearchSpace:
    """The validated space of an architecture entry, or of ``space_file``.

    :param entry: the architecture entry (its ``search_space``).
    :param space_file: a TOML file overriding it (see :func:`load_space_file`).
    """
    space = dict(entry.search_space)
    where = f"search space of {entry.qualified_name}"
    if space_file is not None:
        space, where = load_space_file(space_file, space), f"search space file {space_file}"
    return check_space(space, where)


def search_space(entry: Entry, space_file: str | Path | None = None) -> dict[str, Any]:
    """Map each parameter to an optuna distribution: the entry's space, or the file's.

    :param entry: the architecture entry.
    :param space_file: a TOML file overriding the entry's space.
    :return: ``{name: optuna.distributions.BaseDistribution}``; empty when nothing is searched.
    """
    return space_of(entry, space_file).to_optuna()


def suggest(trial: Any, space: SearchSpace, prefix: str = "") -> dict[str, Any]:
    """Ask ``trial`` for every parameter; ``prefix`` namespaces them (autopilot: ``resnet18/lr``).

    A trial that retries an interrupted one gets the same values back: optuna answers a suggestion
    from the parameters the trial was created with.
    """
    out: dict[str, Any] = {}
    for p in space.values():
        name = prefix + p.name
        if p.type == "categorical":
            out[p.name] = trial.suggest_categorical(name, list(p.choices))
        elif p.type == "int":
            out[p.name] = trial.suggest_int(name, int(p.low or 0), int(p.high or 0), step=int(p.step or 1), log=p.log)
        else:
            out[p.name] = trial.suggest_float(name, float(p.low or 0.0), float(p.high or 0.0), step=p.step, log=p.log)
    return out


def apply_params(config: Any, params: Mapping[str, Any]) -> Any:
    """A run config with ``params`` (space keys) applied over it.

    :param config: a :class:`bestiary.engine.config.RunConfig`.
    :param params: ``{"lr": 0.01, "model.drop_path_rate": 0.1}``.
    :return: a new, validated config.
    """
    changes: dict[str, Any] = {}
    tables = {t: dict(getattr(config, t)) for t in TABLES}
    for key, value in params.items():
        head, dot, option = key.partition(".")
        if dot:
            tables[head][option] = value
        else:
            changes[key] = _plain(value)
    changes.update({t: v for t, v in tables.items() if v != getattr(config, t)})
    return config.replace(**changes)


def _plain(value: Any) -> Any:
    """numpy scalars (from grid values) as Python numbers, which the config validation expects."""
    return value.item() if hasattr(value, "item") else value
