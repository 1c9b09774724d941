"""Hyperparameter search spaces: one value type for every tuner.

An entry declares its space as JSON values, one table per parameter::

    {"lr": {"type": "float", "low": 1e-4, "high": 0.1, "log": True},
     "batch_size": {"type": "categorical", "choices": [32, 64]},
     "model.depth": {"type": "int", "low": 2, "high": 8, "step": 2}}

:meth:`SearchSpace.parse` validates it (when an entry is made, when a space file is read);
the space then gives its grid, its optuna distributions and its SageMaker parameter ranges, so
the tuner, the grid sampler and a cloud tuning job search the same space. Pure Python: optuna and
numpy are imported only by the methods that need them.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

TYPES = ("float", "int", "categorical")
_NEEDS = {"float": ("low", "high"), "int": ("low", "high"), "categorical": ("choices",)}
#: Points of a float range without a step in a grid.
GRID_POINTS = 4
#: At most this many values when an integer range becomes a list of SageMaker choices.
MAX_CHOICES = 30
#: The exception a caller wants for a malformed space (``Param`` has a field named ``type``).
ErrorType = type[Exception]


def _number(x: Any) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x)


@dataclass(frozen=True)
class Param:
    """One dimension of a search space.

    :param name: the config field (``lr``) or factory option (``model.drop_rate``) it sets.
    :param type: ``float``, ``int`` or ``categorical``.
    :param low: lowest value of a range (inclusive).
    :param high: highest value of a range (inclusive).
    :param log: sample the range on a log scale.
    :param step: distance between values of a range, or ``None``.
    :param choices: the values of a categorical parameter.
    """

    name: str
    type: str
    low: float | int | None = None
    high: float | int | None = None
    log: bool = False
    step: float | int | None = None
    choices: tuple[Any, ...] = ()

    @classmethod
    def parse(cls, name: str, spec: Any, where: str = "search space", error: ErrorType = ValueError) -> Param:
        """A parameter from its JSON table; ``error`` (with ``where`` and the remedy) when malformed."""
        at = f"{where}[{name!r}]"
        if not isinstance(spec, Mapping) or spec.get("type") not in TYPES:
            raise error(f"{at} must be a mapping with type float, int or categorical, got {spec!r}")
        missing = [k for k in _NEEDS[spec["type"]] if k not in spec]
        if missing:
            raise error(f"{at} of type {spec['type']} needs {', '.join(missing)}")
        if spec["type"] == "categorical":
            choices = spec["choices"]
            if not isinstance(choices, list | tuple) or not choices:
                raise error(f"{at}: choices must be a non-empty list")
            return cls(name, "categorical", choices=tuple(choices))
        low, high, step, log = spec["low"], spec["high"], spec.get("step"), spec.get("log", False)
        if not (_number(low) and _number(high)) or not low < high or (log and low <= 0):
            raise error(f"{at}: need low < high (and low > 0 with log), both numbers, got {low!r}..{high!r}")
        if not isinstance(log, bool):
            raise error(f"{at}: log must be true or false, got {log!r}")
        if step is not None and (not _number(step) or step <= 0):
            raise error(f"{at}: step must be a positive number, got {step!r}")
        if spec["type"] == "int" and not all(isinstance(v, int) for v in (low, high, step or 1)):
            raise error(f"{at}: an int range needs whole numbers for low, high and step, got {low!r}..{high!r}")
        return cls(name, spec["type"], low, high, log, step)

    def to_dict(self) -> dict[str, Any]:
        """The JSON table this parameter was parsed from (defaults left out)."""
        if self.type == "categorical":
            return {"type": "categorical", "choices": list(self.choices)}
        out: dict[str, Any] = {"type": self.type, "low": self.low, "high": self.high}
        if self.log:
            out["log"] = True
        if self.step is not None:
            out["step"] = self.step
        return out

    def grid(self, points: int = GRID_POINTS) -> list[Any]:
        """Values of a grid search: every choice and integer (by step), the steps of a float
        range, else ``points`` values of it (log-spaced on a log scale)."""
        if self.type == "categorical":
            return list(self.choices)
        low, high = self.low or 0, self.high or 0  # parse guarantees both
        if self.type == "int":
            return list(range(int(low), int(high) + 1, int(self.step or 1)))
        import numpy as np  # only grids of float ranges need it

        if self.step is not None:
            return [float(v) for v in np.arange(low, high + self.step / 2, self.step)]
        spread = np.geomspace if self.log else np.linspace
        return [float(v) for v in spread(low, high, points)]

    def to_optuna(self) -> Any:
        """The optuna distribution of this parameter."""
        # optuna is imported only by tuning code
        from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

        if self.type == "categorical":
            return CategoricalDistribution(list(self.choices))
        if self.type == "int":
            return IntDistribution(int(self.low or 0), int(self.high or 0), log=self.log, step=int(self.step or 1))
        return FloatDistribution(float(self.low or 0.0), float(self.high or 0.0), log=self.log, step=self.step)

    def to_sagemaker(self, *, grid: bool = False, error: ErrorType = ValueError) -> dict[str, Any]:
        """This parameter as a SageMaker parameter range (JSON): ``{"kind": "Continuous", "min",
        "max", "scaling"}``, ``Integer`` alike, or ``{"kind": "Categorical", "values"}``.

        :param grid: the grid strategy takes categorical ranges only: integer ranges become lists
            of values, float ranges are refused.
        """
        scaling = "Logarithmic" if self.log else "Linear"
        if self.type == "categorical":
            return {"kind": "Categorical", "values": list(self.choices)}
        if self.type == "int":
            if (self.step or 1) > 1 or grid:
                values = self.grid()
                if len(values) > MAX_CHOICES:
                    raise error(f"search space entry {self.name!r}: {len(values)} values with step {self.step or 1}; "
                                f"SageMaker ranges have no step, and a list may hold {MAX_CHOICES}; "
                                "widen the step or drop it")
                return {"kind": "Categorical", "values": values}
            return {"kind": "Integer", "min": int(self.low or 0), "max": int(self.high or 0), "scaling": scaling}
        if grid:
            raise error(f"the grid strategy needs lists of values, but {self.name!r} is a float range; "
                        "give it 'choices' (type categorical) or use --strategy bayesian")
        if self.step is not None:
            raise error(f"search space entry {self.name!r}: SageMaker float ranges have no step; drop it "
                        "or list the values as categorical choices")
        return {"kind": "Continuous", "min": float(self.low or 0.0), "max": float(self.high or 0.0),
                "scaling": scaling}


@dataclass(frozen=True)
class SearchSpace(Mapping[str, Param]):
    """Parameters searched together, in declaration order: a read-only mapping of name to
    :class:`Param`."""

    params: tuple[Param, ...] = ()

    @classmethod
    def parse(cls, space: Mapping[str, Any] | SearchSpace | None, where: str = "search space",
              error: ErrorType = ValueError) -> SearchSpace:
        """Validate a space of JSON tables (or pass a parsed one through).

        :param space: ``{name: {"type": ..., ...}}``.
        :param where: names the space in messages (``search space file tune.toml``).
        :param error: the exception type raised for a malformed parameter.
        """
        if isinstance(space, SearchSpace):
            return space
        if space is None:
            return cls()
        if not isinstance(space, Mapping):
            raise error(f"{where} must be a table of parameters, got {type(space).__name__}")
        return cls(tuple(Param.parse(name, spec, where, error) for name, spec in space.items()))

    def __getitem__(self, name: str) -> Param:
        for p in self.params:
            if p.name == name:
                return p
        raise KeyError(name)

    def __iter__(self) -> Iterator[str]:
        return (p.name for p in self.params)

    def __len__(self) -> int:
        return len(self.params)

    @property
    def names(self) -> list[str]:
        return [p.name for p in self.params]

    def to_dict(self) -> dict[str, dict[str, Any]]:
        """The space as JSON tables."""
        return {p.name: p.to_dict() for p in self.params}

    def grid(self, points: int = GRID_POINTS) -> dict[str, list[Any]]:
        """Each parameter's grid values (see :meth:`Param.grid`)."""
        return {p.name: p.grid(points) for p in self.params}

    def grid_size(self, points: int = GRID_POINTS) -> int:
        """Points of the full grid: the product of each parameter's number of values."""
        return math.prod(len(values) for values in self.grid(points).values())

    def grid_points(self, points: int = GRID_POINTS) -> Iterator[dict[str, Any]]:
        """Every point of the grid, the first parameter varying slowest."""
        import itertools

        grid = self.grid(points)
        for values in itertools.product(*grid.values()):
            yield dict(zip(grid, values))

    def to_optuna(self) -> dict[str, Any]:
        """``{name: optuna distribution}``."""
        return {p.name: p.to_optuna() for p in self.params}

    def to_sagemaker(self, *, grid: bool = False, error: ErrorType = ValueError) -> dict[str, dict[str, Any]]:
        """``{name: SageMaker parameter range}`` (see :meth:`Param.to_sagemaker`)."""
        return {p.name: p.to_sagemaker(grid=grid, error=error) for p in self.params}
