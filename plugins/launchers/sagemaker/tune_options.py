"""``bestiary tune ... --launcher sagemaker``: the tune options, which ``bestiary tune`` passes as
the job's study (a dict), become a :class:`~.tuning.Study` for a SageMaker hyperparameter tuning job.

=======================  =============================================================
tune option              study
=======================  =============================================================
``--sampler``            ``tpe``/``cmaes``: bayesian, ``random``, ``grid``
``--pruner``             ``hyperband``: the hyperband strategy; ``none``: no early
                         stopping; any other (or none given): early stopping
``--trials``/``--n-jobs``  trials in all / at once
``--metric``/``--direction``  the objective (one)
``--sampler-seed``       the search's seed
``--space``              the search space file (else the architecture's)
=======================  =============================================================

``--launch-option warm_start=JOB1,JOB2`` (and ``warm_start_type=transfer``) warm-starts the
search from earlier tuning jobs.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from bestiary.extend import ConfigError, Job, LaunchOptions

from .tuning import Study

#: Options of local studies that a remote search has no use for.
_LOCAL_ONLY = {"storage": None, "out": None, "timeout": None, "study": None}
_SAMPLERS = {"tpe": "bayesian", "cmaes": "bayesian", "random": "random", "grid": "grid"}


def study_from_options(options: dict[str, Any], config: Any, launch: LaunchOptions) -> tuple[Study, LaunchOptions]:
    """The study the tune options describe, and the launch options without the study's own."""
    from bestiary.extend import get_entry, space_of  # plain JSON spaces; imports neither optuna nor torch

    for key, default in _LOCAL_ONLY.items():
        if options.pop(key, default) not in (default, ()):
            raise ConfigError(f"--{key} applies to local studies; a remote tuning job keeps its own state "
                              "(see `bestiary jobs show NAME`)")
    options.pop("plots", None)
    sampler = options.pop("sampler", "tpe") or "tpe"
    if sampler not in _SAMPLERS:
        raise ConfigError(f"--sampler {sampler} has no remote counterpart; use one of {', '.join(_SAMPLERS)}")
    pruner = options.pop("pruner", None)
    metrics = list(options.pop("objective_metrics", ()) or ())
    directions = list(options.pop("direction", ()) or ())
    if len(metrics) > 1 or len(directions) > 1:
        raise ConfigError("a remote tuning job optimises one metric: pass one --metric (and one --direction)")
    extra = dict(launch.extra)
    warm = extra.pop("warm_start", ())
    warm_start = tuple(w.strip() for w in warm.split(",") if w.strip()) if isinstance(warm, str) else tuple(warm)
    warm_type = str(extra.pop("warm_start_type", "identical"))
    study = Study(
        space=space_of(get_entry("architectures", config.arch), options.pop("space", None)).to_dict(),
        objective=metrics[0] if metrics else None,
        direction={"max": "maximize", "min": "minimize"}.get(directions[0]) if directions else None,
        strategy="hyperband" if pruner == "hyperband" else _SAMPLERS[sampler],
        max_jobs=options.pop("trials", None), max_parallel_jobs=options.pop("n_jobs", 1) or 1,
        early_stopping=pruner not in ("none", "hyperband"), warm_start=warm_start, warm_start_type=warm_type,
        seed=options.pop("sampler_seed", None))
    return study, dataclasses.replace(launch, extra=extra)


def with_study(job: Job) -> Job:
    """``job`` with its study as a :class:`Study`: ``bestiary tune`` passes its options as a dict."""
    if job.kind != "tune" or job.study is None or isinstance(job.study, Study):
        return job
    study, launch = study_from_options(dict(job.study), job.config, job.options)
    return dataclasses.replace(job, study=study, options=launch)
