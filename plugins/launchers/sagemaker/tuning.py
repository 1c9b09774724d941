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

from bestiary.extend import ConfigError, SearchSpace

STRATEGIES = {"bayesian": "Bayesian", "random": "Random", "hyperband": "Hyperband", "grid": "Grid"}
WARM_START_TYPES = {"identical": "IdenticalDataAndAlgorithm", "transfer": "TransferLearning"}


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
        if (self.max_jobs is not None and self.max_jobs < 1) or self.max_parallel_jobs < 1:
            raise ConfigError("--max-jobs and --max-parallel-jobs must be >= 1")
        if self.strategy == "hyperband" and self.early_stopping:
            raise ConfigError("the hyperband strategy stops trials itself; drop --early-stopping or use "
                              "--strategy bayesian")
        if not self.space:
            raise ConfigError("the search space is empty: the architecture declares none; give one with "
                              "--space FILE (see docs/sagemaker.md#tuning)")
        ranges(self.space, grid=self.strategy == "grid")


def ranges(space: dict[str, Any] | SearchSpace, *, grid: bool = False) -> dict[str, dict[str, Any]]:
    """The space as SageMaker parameter ranges (JSON): ``{"lr": {"kind": "Continuous", "min": ...,
    "max": ..., "scaling": "Logarithmic"}, "batch_size": {"kind": "Categorical", "values": [...]}}``.

    :param grid: the grid strategy takes categorical ranges only: integer ranges become lists of
        values, float ranges are refused.
    """
    return SearchSpace.parse(space, error=ConfigError).to_sagemaker(grid=grid, error=ConfigError)


def grid_size(space: dict[str, Any] | SearchSpace) -> int:
    """Trials of a grid search over ``space``: every point once."""
    return SearchSpace.parse(space, error=ConfigError).grid_size()
