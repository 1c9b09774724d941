"""A tuning study for launchers that run the search themselves (SageMaker hyperparameter tuning
jobs): the search space of bestiary entries turned into parameter ranges, with the strategy, the
objective and the budget.

A search space maps config fields (``lr``) or factory options (``model.drop_rate``) to
distributions (see :mod:`bestiary.hookspecs`); each trial receives its values as hyperparameters,
which the container applies like ``--set key=value``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bestiary.errors import ConfigError

STRATEGIES = {"bayesian": "Bayesian", "random": "Random", "hyperband": "Hyperband", "grid": "Grid"}
WARM_START_TYPES = {"identical": "IdenticalDataAndAlgorithm", "transfer": "TransferLearning"}
#: At most this many values when an integer range with a step becomes a list of choices.
MAX_CHOICES = 30


@dataclass(frozen=True)
class Study:
    """What to search and how.

    :param space: the search space (``{"lr": {"type": "float", "low": 1e-4, "high": 0.1, "log": True}}``).
    :param objective: the metric to optimise, ``split:name`` or a metric name (validation split);
        default: the run's monitor.
    :param direction: ``maximize`` or ``minimize``; default: from the metric.
    :param strategy: ``bayesian``, ``random``, ``hyperband`` or ``grid``.
    :param max_jobs: trials in all (grid: at most the grid's size; default: the grid's size).
    :param max_parallel_jobs: trials at once.
    :param early_stopping: let the service stop trials that trail (not with hyperband, which stops
        trials itself).
    :param warm_start: names of earlier tuning jobs to learn from.
    :param warm_start_type: ``identical`` (same data and code) or ``transfer`` (changed data or space).
    :param seed: seed of the search, for repeatable studies.
    """

    space: dict[str, Any]
    objective: str | None = None
    direction: str | None = None
    strategy: str = "bayesian"
    max_jobs: int | None = 10
    max_parallel_jobs: int = 1
    early_stopping: bool = False
    warm_start: tuple[str, ...] = ()
    warm_start_type: str = "identical"
    seed: int | None = None

    def validate(self) -> None:
        if self.strategy not in STRATEGIES:
            raise ConfigError(f"tuning strategy {self.strategy!r} is not one of {', '.join(STRATEGIES)}")
        if self.warm_start_type not in WARM_START_TYPES:
            raise ConfigError(f"warm-start type {self.warm_start_type!r} is not one of {', '.join(WARM_START_TYPES)}")
        if self.direction not in (None, "maximize", "minimize"):
            raise ConfigError(f"direction must be maximize or minimize, got {self.direction!r}")
        if self.max_jobs is not None and self.max_jobs < 1 or self.max_parallel_jobs < 1:
            raise ConfigError("--max-jobs and --max-parallel-jobs must be >= 1")
        if self.strategy == "hyperband" and self.early_stopping:
            raise ConfigError("the hyperband strategy stops trials itself; drop --early-stopping or use "
                              "--strategy bayesian")
        if not self.space:
            raise ConfigError("the search space is empty: the architecture declares none; give one with "
                              "--space FILE (see docs/sagemaker.md#tuning)")
        ranges(self.space, grid=self.strategy == "grid")


def ranges(space: dict[str, Any], *, grid: bool = False) -> dict[str, dict[str, Any]]:
    """The space as SageMaker parameter ranges (JSON): ``{"lr": {"kind": "Continuous", "min": ...,
    "max": ..., "scaling": "Logarithmic"}, "batch_size": {"kind": "Categorical", "values": [...]}}``.

    :param grid: the grid strategy takes categorical ranges only: integer ranges become lists of
        values, float ranges are refused.
    """
    out: dict[str, dict[str, Any]] = {}
    for name, dist in space.items():
        if not isinstance(dist, dict) or "type" not in dist:
            raise ConfigError(f"search space entry {name!r} must be a table with a 'type', got {dist!r}")
        kind = dist["type"]
        log = bool(dist.get("log"))
        if kind == "categorical":
            choices = list(dist.get("choices") or [])
            if not choices:
                raise ConfigError(f"search space entry {name!r}: categorical needs 'choices'")
            out[name] = {"kind": "Categorical", "values": choices}
        elif kind == "int":
            low, high, step = int(dist["low"]), int(dist["high"]), int(dist.get("step") or 1)
            if step > 1 or grid:
                values = list(range(low, high + 1, step))
                if len(values) > MAX_CHOICES:
                    raise ConfigError(f"search space entry {name!r}: {len(values)} values with step {step}; "
                                      f"SageMaker ranges have no step, and a list may hold {MAX_CHOICES}; "
                                      "widen the step or drop it")
                out[name] = {"kind": "Categorical", "values": values}
            else:
                out[name] = {"kind": "Integer", "min": low, "max": high,
                             "scaling": "Logarithmic" if log else "Linear"}
        elif kind == "float":
            if grid:
                raise ConfigError(f"the grid strategy needs lists of values, but {name!r} is a float range; "
                                  "give it 'choices' (type categorical) or use --strategy bayesian")
            if dist.get("step"):
                raise ConfigError(f"search space entry {name!r}: SageMaker float ranges have no step; drop it "
                                  "or list the values as categorical choices")
            out[name] = {"kind": "Continuous", "min": float(dist["low"]), "max": float(dist["high"]),
                         "scaling": "Logarithmic" if log else "Linear"}
        else:
            raise ConfigError(f"search space entry {name!r}: type {kind!r} is not float, int or categorical")
    return out


def grid_size(table: dict[str, dict[str, Any]]) -> int:
    size = 1
    for spec in table.values():
        size *= len(spec.get("values", ()))
    return size
