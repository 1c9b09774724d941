"""Search spaces: an architecture entry's ``search_space``, optionally overridden by a TOML file,
turned into optuna distributions, and trial parameters applied to a run config.

The conversion is a plain function (:func:`search_space`) so that other tuners (a cloud tuning
job, say) can reuse the same space. Keys are run-config fields (``lr``, ``batch_size``,
``weight_decay``) or factory options of a table field (``model.drop_path_rate``,
``data.context_length``, ``strategy_options.bucket_cap_mb``).
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

#: Config fields holding factory options: ``model.X`` sets ``config.model["X"]``.
TABLES = ("model", "data", "strategy_options")
#: Config fields a search space may not vary: they name the run rather than tune it.
FIXED = ("arch", "dataset", "run_dir", "runs_root", "quiet", "metrics", "monitor", "mode", "device")
_TYPES = {"float": {"low", "high"}, "int": {"low", "high"}, "categorical": {"choices"}}


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


def check_space(space: Mapping[str, Any], where: str = "search space") -> None:
    """Refuse keys that are no config field and malformed distributions, naming the remedy."""
    from ..engine.config import RunConfig  # pure Python, but keeps this module's import cheap

    fields = {f.name for f in dataclasses.fields(RunConfig)}
    for key, spec in space.items():
        head, dot, _ = key.partition(".")
        if dot and head not in TABLES:
            raise ConfigError(f"{where}: {key!r}: only {', '.join(t + '.<option>' for t in TABLES)} take a dotted name")
        if not dot and (key not in fields or key in FIXED or key in TABLES):
            close = difflib.get_close_matches(key, sorted(fields - set(FIXED) - set(TABLES)), n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise ConfigError(f"{where}: {key!r} is not a config field a search may vary.{hint} "
                              "Use run-config fields (see docs/config.md) or model.<factory option>")
        if not isinstance(spec, Mapping) or spec.get("type") not in _TYPES:
            raise ConfigError(f"{where}: {key!r} must be a table with type float, int or categorical, got {spec!r}")
        missing = _TYPES[spec["type"]] - set(spec)
        if missing:
            raise ConfigError(f"{where}: {key!r} of type {spec['type']} needs {', '.join(sorted(missing))}")
        if spec["type"] == "categorical":
            if not isinstance(spec["choices"], list) or not spec["choices"]:
                raise ConfigError(f"{where}: {key!r}: choices must be a non-empty list")
        elif not spec["low"] < spec["high"] or (spec.get("log") and spec["low"] <= 0):
            raise ConfigError(f"{where}: {key!r}: need low < high (and low > 0 with log), got {spec['low']}..{spec['high']}")


def space_of(entry: Entry, space_file: str | Path | None = None) -> dict[str, dict[str, Any]]:
    """The validated space (JSON values) of an architecture entry, or of ``space_file``.

    :param entry: the architecture entry (its ``search_space``).
    :param space_file: a TOML file overriding it (see :func:`load_space_file`).
    """
    space = dict(entry.search_space)
    where = f"search space of {entry.qualified_name}"
    if space_file is not None:
        space, where = load_space_file(space_file, space), f"search space file {space_file}"
    check_space(space, where)
    return space


def search_space(entry: Entry, space_file: str | Path | None = None) -> dict[str, Any]:
    """Map each parameter to an optuna distribution: the entry's space, or the file's.

    :param entry: the architecture entry.
    :param space_file: a TOML file overriding the entry's space.
    :return: ``{name: optuna.distributions.BaseDistribution}``; empty when nothing is searched.
    """
    return to_distributions(space_of(entry, space_file))


def to_distributions(space: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """Optuna distributions for a space of JSON values (already checked)."""
    # optuna is imported only by tuning code
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    out: dict[str, Any] = {}
    for key, spec in space.items():
        if spec["type"] == "categorical":
            out[key] = CategoricalDistribution(list(spec["choices"]))
        elif spec["type"] == "int":
            out[key] = IntDistribution(int(spec["low"]), int(spec["high"]), log=bool(spec.get("log", False)),
                                       step=int(spec.get("step", 1)))
        else:
            out[key] = FloatDistribution(float(spec["low"]), float(spec["high"]), log=bool(spec.get("log", False)),
                                         step=spec.get("step"))
    return out


def grid_of(distributions: Mapping[str, Any], points: int = 4) -> dict[str, list[Any]]:
    """Grid values for the grid sampler: every choice and integer, ``points`` values of a float
    range (log-spaced when the range is log), or its steps."""
    import numpy as np  # only grid search needs it
    from optuna.distributions import CategoricalDistribution, IntDistribution

    grid: dict[str, list[Any]] = {}
    for key, d in distributions.items():
        if isinstance(d, CategoricalDistribution):
            grid[key] = list(d.choices)
        elif isinstance(d, IntDistribution):
            grid[key] = list(range(d.low, d.high + 1, d.step))
        elif d.step is not None:
            grid[key] = [float(v) for v in np.arange(d.low, d.high + d.step / 2, d.step)]
        elif d.log:
            grid[key] = [float(v) for v in np.geomspace(d.low, d.high, points)]
        else:
            grid[key] = [float(v) for v in np.linspace(d.low, d.high, points)]
    return grid


def suggest(trial: Any, distributions: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Ask ``trial`` for every parameter; ``prefix`` namespaces them (autopilot: ``resnet18/lr``).

    A trial that retries an interrupted one gets the same values back: optuna answers a suggestion
    from the parameters the trial was created with.
    """
    from optuna.distributions import CategoricalDistribution, IntDistribution

    out: dict[str, Any] = {}
    for key, d in distributions.items():
        name = prefix + key
        if isinstance(d, CategoricalDistribution):
            out[key] = trial.suggest_categorical(name, d.choices)
        elif isinstance(d, IntDistribution):
            out[key] = trial.suggest_int(name, d.low, d.high, step=d.step, log=d.log)
        else:
            out[key] = trial.suggest_float(name, d.low, d.high, step=d.step, log=d.log)
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
