"""SageMaker hyperparameter tuning jobs from a bestiary search space.

Each trial is a training job of the same code directory as ``bestiary train --launcher sagemaker``;
its hyperparameters are the trial's values, which the container applies to the run config. The
objective is read from the ``[bestiary] step=N validation:NAME=VALUE`` lines every evaluation
prints.

Tuning jobs cannot replace the container's entrypoint, so the SDK falls back to the framework
image's ``sagemaker-training`` toolkit, which runs ``python bestiary_entry.py`` and no torchrun.
Two things keep several processes per trial: the static hyperparameters
``sagemaker_torch_distributed_enabled`` and ``sagemaker_mpi_num_of_processes_per_host`` make the
toolkit of the PyTorch images start torchrun, and the entry point starts torchrun itself when it
finds itself alone (no ``RANK``) in a job that wants several processes.
"""

from __future__ import annotations

import time
from typing import Any

from bestiary.extend import ConfigError, Job, LaunchResult, record_job

from .container import RUN_PER_JOB_ENV
from .metrics_log import metric_regex
from .pricing import estimate
from .tuning import STRATEGIES, WARM_START_TYPES, Study, grid_size, ranges

#: Tuning job names have at most 32 characters.
NAME_LIMIT = 32
#: Trials may share a checkpoint location: each keeps its run under its own training job's name.
TRIAL_ENVIRONMENT = {RUN_PER_JOB_ENV: "1"}


def _objective(cfg: Any, study: Study) -> tuple[str, str]:
    """``(split:metric, Maximize|Minimize)`` for the study's objective."""
    from bestiary.extend import get_entry, metric_direction

    name = study.objective or cfg.monitor
    if name is None:
        arch = get_entry("architectures", cfg.arch)
        task_name = arch.task or get_entry("datasets", cfg.dataset).task
        if task_name is None:
            raise ConfigError(f"neither {cfg.arch!r} nor {cfg.dataset!r} declares a task; name the objective with --metric")
        name = get_entry("tasks", task_name).build().monitor  # the task's default monitor
    split, _, metric = name.rpartition(":")
    split = split or "validation"
    if study.direction is not None:
        return f"{split}:{metric}", study.direction.capitalize()
    found = metric_direction(metric if metric == "loss" else get_entry("metrics", metric))
    return f"{split}:{metric}", "Minimize" if found == "min" else "Maximize"


def static_hyperparameters(req: Any) -> dict[str, str]:
    """Hyperparameters every trial gets: torchrun settings for the framework image's toolkit."""
    if not req.distributed:
        return {}
    return {"sagemaker_torch_distributed_enabled": "true",
            "sagemaker_mpi_num_of_processes_per_host": str(req.nproc_per_node)}


def settings(req: Any, job: Job) -> dict[str, Any]:
    """The tuning request in bestiary's terms (JSON values), validated."""
    study: Study = job.study
    if study is None:
        raise ConfigError("a tune job needs a study (search space, strategy, budget)")
    study.validate()
    table = ranges(study.space, grid=study.strategy == "grid")
    clash = sorted(set(table) & set(static_hyperparameters(req)))
    if clash:
        raise ConfigError(f"cannot tune {', '.join(clash)}: SageMaker settings, not config fields")
    objective, direction = _objective(req.config, study)
    max_jobs = study.max_jobs
    if study.strategy == "grid":
        size = grid_size(study.space)
        max_jobs = min(max_jobs, size) if max_jobs else size
    out: dict[str, Any] = {
        "strategy": STRATEGIES[study.strategy], "objective": {"metric": objective, "type": direction},
        "metric_definitions": [{"Name": objective, "Regex": metric_regex(*objective.split(":", 1))}],
        "ranges": table, "max_jobs": max_jobs, "max_parallel_jobs": study.max_parallel_jobs,
        "early_stopping": "Auto" if study.early_stopping else "Off",
        "static_hyperparameters": static_hyperparameters(req),
        "warm_start": {"parents": list(study.warm_start), "type": WARM_START_TYPES[study.warm_start_type]}
        if study.warm_start else None,
        "random_seed": study.seed,
    }
    if study.strategy == "hyperband":
        out["hyperband"] = {"min_resource": 1, "max_resource": max(req.config.epochs, 1)}
    return out


def tuning_plan(req: Any, job: Job) -> dict[str, Any]:
    """The ``tuning`` part of a dry run, and the cost bound of every trial."""
    tuning = settings(req, job)
    cost = estimate(req.instance_type, req.instance_count, req.max_run,
                    jobs=tuning["max_jobs"] or 1, parallel=tuning["max_parallel_jobs"])
    return {"tuning": tuning, "job_name": f"{req.base_job_name[:NAME_LIMIT - 13]}-<timestamp>",
            "hyperparameters": tuning["static_hyperparameters"], "estimated_cost_usd": cost,
            "environment": {**req.environment, **TRIAL_ENVIRONMENT},
            "checkpoints": {"s3_uri": req.checkpoint_s3 or "s3://<default bucket>/<job>/tuning-checkpoints",
                            "local_path": "/opt/ml/checkpoints", "run": "<trial's training job name>/run"}}


def _parameter_ranges(table: dict[str, dict[str, Any]]) -> dict[str, Any]:
    from sagemaker.core.parameter import CategoricalParameter, ContinuousParameter, IntegerParameter

    out: dict[str, Any] = {}
    for name, spec in table.items():
        if spec["kind"] == "Categorical":
            out[name] = CategoricalParameter([str(v) for v in spec["values"]])
        elif spec["kind"] == "Integer":
            out[name] = IntegerParameter(spec["min"], spec["max"], scaling_type=spec["scaling"])
        else:
            out[name] = ContinuousParameter(spec["min"], spec["max"], scaling_type=spec["scaling"])
    return out


def launch_tuning(req: Any, job: Job, trainer: Any, staged: dict[str, Any]) -> LaunchResult:
    """Create the tuning job from the prepared ModelTrainer."""
    from sagemaker.core.shapes import (
        HyperbandStrategyConfig,
        HyperParameterTuningJobStrategyConfig,
        HyperParameterTuningJobWarmStartConfig,
        ParentHyperParameterTuningJob,
    )
    from sagemaker.train.tuner import HyperparameterTuner

    from .trainer import input_channels

    tuning = settings(req, job)
    trainer.hyperparameters = {**(trainer.hyperparameters or {}), **tuning["static_hyperparameters"]}
    trainer.environment = {**(trainer.environment or {}), **TRIAL_ENVIRONMENT}
    if trainer.checkpoint_config.s3_uri is None:  # the tuning API, unlike a training job, needs it given
        bucket = trainer.sagemaker_session.default_bucket()
        trainer.checkpoint_config.s3_uri = f"s3://{bucket}/{req.base_job_name}/tuning-checkpoints"
    kwargs: dict[str, Any] = {}
    if tuning["warm_start"]:
        kwargs["warm_start_config"] = HyperParameterTuningJobWarmStartConfig(
            parent_hyper_parameter_tuning_jobs=[ParentHyperParameterTuningJob(hyper_parameter_tuning_job_name=p)
                                                for p in tuning["warm_start"]["parents"]],
            warm_start_type=tuning["warm_start"]["type"])
    if "hyperband" in tuning:
        kwargs["strategy_config"] = HyperParameterTuningJobStrategyConfig(
            hyperband_strategy_config=HyperbandStrategyConfig(**tuning["hyperband"]))
    if tuning["random_seed"] is not None:
        kwargs["random_seed"] = tuning["random_seed"]
    tuner = HyperparameterTuner(
        model_trainer=trainer, objective_metric_name=tuning["objective"]["metric"],
        objective_type=tuning["objective"]["type"], hyperparameter_ranges=_parameter_ranges(tuning["ranges"]),
        metric_definitions=tuning["metric_definitions"], strategy=tuning["strategy"], max_jobs=tuning["max_jobs"],
        max_parallel_jobs=tuning["max_parallel_jobs"], early_stopping_type=tuning["early_stopping"],
        tags=[{"Key": k, "Value": v} for k, v in req.tags.items()], **kwargs)
    name = f"{req.base_job_name[:NAME_LIMIT - 13]}-{time.strftime('%y%m%d%H%M%S')}"
    tuner.tune(inputs=input_channels(req) or None, job_name=name, wait=False)
    created = tuner.latest_tuning_job
    details = {"region": req.region, "arn": created.hyper_parameter_tuning_job_arn, "instance_type": req.instance_type,
               "instance_count": req.instance_count, "staged": staged, "status": "submitted"}
    record_job(created.hyper_parameter_tuning_job_name, "sagemaker", "tune", details)
    if job.options.wait:
        created.wait()
        created.refresh()
        details["status"] = created.hyper_parameter_tuning_job_status
    return LaunchResult(exit_code=0, job_name=created.hyper_parameter_tuning_job_name, details=details)
