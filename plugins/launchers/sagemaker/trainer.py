"""The SDK side of the ``sagemaker`` launcher: a SageMaker session and the ``ModelTrainer`` of a
request (``sagemaker.train``; imported only here, when a job is created)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .launcher import CHECKPOINT_LOCAL, Request


def session(region: str) -> Any:
    """A SageMaker session for ``region`` (its default bucket holds uploads unless --output-s3)."""
    import boto3  # comes with the SDK
    from sagemaker.core.helper.session_helper import Session

    return Session(boto_session=boto3.Session(region_name=region))


def input_channels(req: Request) -> list[Any]:
    from sagemaker.core.training.configs import InputData

    return [InputData(channel_name=name, data_source=uri) for name, uri in req.channels.items()]


def model_trainer(req: Request, code: Path) -> Any:
    """The SDK's ModelTrainer for ``req`` with the staged code directory ``code``."""
    from sagemaker.core.training.configs import (
        CheckpointConfig,
        Compute,
        OutputDataConfig,
        SourceCode,
        StoppingCondition,
    )
    from sagemaker.train import ModelTrainer
    from sagemaker.train.distributed import Torchrun

    from .staging import ENTRY_SCRIPT

    compute: dict[str, Any] = {"instance_type": req.instance_type, "instance_count": req.instance_count,
                               "enable_managed_spot_training": req.spot or None}
    if req.volume_gb:
        compute["volume_size_in_gb"] = req.volume_gb
    if req.keep_alive:
        compute["keep_alive_period_in_seconds"] = req.keep_alive
    stopping: dict[str, Any] = {"max_runtime_in_seconds": req.max_run}
    if req.max_wait:
        stopping["max_wait_time_in_seconds"] = req.max_wait
    kwargs: dict[str, Any] = {}
    if req.output_s3:
        kwargs["output_data_config"] = OutputDataConfig(s3_output_path=req.output_s3)
    has_requirements = (code / "requirements.txt").exists()
    return ModelTrainer(
        sagemaker_session=session(req.region), role=req.role, base_job_name=req.base_job_name,
        training_image=req.image,
        source_code=SourceCode(source_dir=str(code), entry_script=ENTRY_SCRIPT,
                               requirements="requirements.txt" if has_requirements else None,
                               ignore_patterns=["__pycache__", "*.pyc"]),
        distributed=Torchrun(process_count_per_node=req.nproc_per_node) if req.distributed else None,
        compute=Compute(**compute), stopping_condition=StoppingCondition(**stopping),
        checkpoint_config=CheckpointConfig(s3_uri=req.checkpoint_s3, local_path=CHECKPOINT_LOCAL),
        environment=req.environment, hyperparameters=dict(req.hyperparameters),
        tags=[{"key": k, "value": v} for k, v in req.tags.items()], **kwargs,
    )

