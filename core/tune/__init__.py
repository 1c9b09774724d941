"""Hyperparameter tuning and AutoML on optuna: every trial is an ordinary bestiary run.

>>> from bestiary.tune import tune, autopilot
>>> result = tune("resnet18", dataset="digits", trials=20, epochs=3)        # doctest: +SKIP
>>> result["best"]["params"], result["best"]["run_dir"]                      # doctest: +SKIP
>>> board = autopilot("digits", time_budget="5m")                           # doctest: +SKIP

Importing this package is cheap; optuna and torch load when a study starts.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .space import apply_params, load_space_file, search_space, space_of


def tune(arch: str, dataset: str | None = None, *, trials: int | None = 20, timeout: float | None = None,
         metric: str | list[str] | None = None, direction: str | list[str] | None = None, sampler: str = "tpe",
         pruner: str | None = None, storage: str | None = None, study: str | None = None,
         space: str | Path | None = None, n_jobs: int = 1, out: str | Path | None = None,
         sampler_seed: int | None = None, plots: bool = True, config: Any = None, host: Any = None,
         echo: Any = None, **fields: Any) -> dict[str, Any]:
    """Tune ``arch`` on ``dataset``; each trial is one run of ``bestiary.engine.trainer.train``.

    Running the same call again continues the same study (same name and storage): finished trials
    are kept and a trial whose tuner died is retried with its parameters.

    :param arch: architecture name.
    :param dataset: dataset name.
    :param trials: finished (complete or pruned) trials the study should hold.
    :param timeout: seconds after which no new trial starts.
    :param metric: objective metric(s); ``latency_ms`` is the trained model's inference latency on
        the current device. Default: the task's monitored metric.
    :param direction: ``max``/``min``, one, or one per metric; default from the metric.
    :param sampler: tpe, random, grid, cmaes or nsga2.
    :param pruner: median, hyperband, halving or none (default: median; none for several metrics).
    :param storage: optuna storage URL (``sqlite:///tune.db``) or journal file; default
        ``RUNS_ROOT/studies/STUDY.journal``.
    :param study: study name; default ``ARCH-DATASET``.
    :param space: a TOML file replacing (or, with ``inherit = true``, extending) the entry's space.
    :param n_jobs: trials at once in this process.
    :param out: results folder; default ``RUNS_ROOT/studies/STUDY``.
    :param sampler_seed: seed the sampler (unseeded by default, so concurrent tuners differ).
    :param plots: write optuna's plots.
    :param config: a :class:`bestiary.engine.config.RunConfig` to start from instead of ``fields``.
    :param host: plugin host (default: the process-wide one).
    :param echo: a function called with one line per finished trial (e.g. ``print``).
    :param fields: run-config fields that hold for every trial (``epochs=3``, ``batch_size=64``);
        the search space overrides the ones it varies.
    :return: ``best`` (``params``, ``values``, ``run_dir``), ``pareto_front`` with several metrics,
        ``leaderboard``, ``importances``, ``files``, ``study``, ``storage``, ``interrupted``.
    """
    from .report import write_report
    from .study import make_tuner

    tuner = make_tuner(arch, dataset, config=config, metric=metric, direction=direction, space=space, study=study,
                       storage=storage, sampler=sampler, pruner=pruner, sampler_seed=sampler_seed, host=host,
                       echo=echo, **fields)
    tuner.optimize(trials, timeout=timeout, n_jobs=n_jobs)
    target = Path(out) if out else Path(tuner.config.runs_root) / "studies" / tuner.study_name
    result = write_report(tuner.study, target, with_plots=plots)
    result.update({"study": tuner.study_name, "storage": tuner.storage_target, "out": str(target),
                   "interrupted": tuner.interrupted, "failures": list(tuner.failures)})
    return result


def autopilot(dataset: str, **kwargs: Any) -> dict[str, Any]:
    """Pick and tune architectures for ``dataset`` within a time budget; see
    :func:`bestiary.tune.autopilot.run_autopilot` for the arguments."""
    from .autopilot import run_autopilot

    return run_autopilot(dataset, **kwargs)


__all__ = ["apply_params", "autopilot", "load_space_file", "search_space", "space_of", "tune"]
