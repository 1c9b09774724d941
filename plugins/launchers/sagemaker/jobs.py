"""Status, logs and stopping of SageMaker jobs (training and hyperparameter tuning), with boto3."""

from __future__ import annotations

from typing import Any

LOG_GROUP = "/aws/sagemaker/TrainingJobs"


def _client(service: str, region: str) -> Any:
    import boto3  # installed with the SageMaker SDK; imported only for job commands

    return boto3.client(service, region_name=region)


def _is_tuning(sm: Any, name: str) -> bool:
    try:
        sm.describe_hyper_parameter_tuning_job(HyperParameterTuningJobName=name)
    except sm.exceptions.ClientError:
        return False
    except Exception as exc:  # moto and the service answer unknown names with different error types
        if "ResourceNotFound" in type(exc).__name__ or "not found" in str(exc).lower():
            return False
        raise
    return True


def describe(name: str, region: str) -> dict[str, Any]:
    """The job's status and main facts, as JSON values; tuning jobs also list their best trial."""
    sm = _client("sagemaker", region)
    if _is_tuning(sm, name):
        d = sm.describe_hyper_parameter_tuning_job(HyperParameterTuningJobName=name)
        cfg = d.get("HyperParameterTuningJobConfig", {})
        best = d.get("BestTrainingJob") or {}
        return {"name": name, "kind": "tune", "status": d.get("HyperParameterTuningJobStatus"),
                "strategy": cfg.get("Strategy"), "objective": cfg.get("HyperParameterTuningJobObjective"),
                "counters": d.get("TrainingJobStatusCounters"), "created": str(d.get("CreationTime")),
                "best": {"job": best.get("TrainingJobName"), "hyperparameters": best.get("TunedHyperParameters"),
                         "objective": (best.get("FinalHyperParameterTuningJobObjectiveMetric") or {}).get("Value")}
                if best else None}
    d = sm.describe_training_job(TrainingJobName=name)
    resources = d.get("ResourceConfig", {})
    out = {"name": name, "kind": "train", "status": d.get("TrainingJobStatus"),
           "secondary_status": d.get("SecondaryStatus"), "failure_reason": d.get("FailureReason"),
           "instance_type": resources.get("InstanceType"), "instance_count": resources.get("InstanceCount"),
           "spot": bool(d.get("EnableManagedSpotTraining")), "created": str(d.get("CreationTime")),
           "training_seconds": d.get("TrainingTimeInSeconds"), "billable_seconds": d.get("BillableTimeInSeconds"),
           "model": (d.get("ModelArtifacts") or {}).get("S3ModelArtifacts"),
           "checkpoints": (d.get("CheckpointConfig") or {}).get("S3Uri"),
           "metrics": {m["MetricName"]: m["Value"] for m in d.get("FinalMetricDataList", []) or []}}
    return {k: v for k, v in out.items() if v not in (None, {}, "None")}


def logs(name: str, region: str, limit: int = 200) -> list[str]:
    """The last ``limit`` log lines of a training job, from every instance's log stream."""
    client = _client("logs", region)
    streams = client.describe_log_streams(logGroupName=LOG_GROUP, logStreamNamePrefix=f"{name}/").get("logStreams", [])
    events: list[tuple[int, str, str]] = []
    for stream in streams:
        stream_name = stream["logStreamName"]
        page = client.get_log_events(logGroupName=LOG_GROUP, logStreamName=stream_name, startFromHead=False,
                                     limit=limit)
        host = stream_name.split("/", 1)[-1]
        events += [(e["timestamp"], host, e["message"]) for e in page.get("events", [])]
    events.sort()
    many = len(streams) > 1
    return [f"[{host}] {msg}" if many else msg for _, host, msg in events[-limit:]]


def stop(name: str, region: str) -> None:
    """Stop a training or tuning job: its containers get SIGTERM and 120 s to save a checkpoint."""
    sm = _client("sagemaker", region)
    if _is_tuning(sm, name):
        sm.stop_hyper_parameter_tuning_job(HyperParameterTuningJobName=name)
    else:
        sm.stop_training_job(TrainingJobName=name)


def list_remote(region: str, limit: int = 50) -> list[dict[str, Any]]:
    """Training jobs whose names start with ``bestiary``, newest first (started from any machine)."""
    sm = _client("sagemaker", region)
    page = sm.list_training_jobs(NameContains="bestiary", SortBy="CreationTime", SortOrder="Descending",
                                 MaxResults=min(limit, 100))
    return [{"name": j["TrainingJobName"], "status": j["TrainingJobStatus"], "created": str(j.get("CreationTime"))}
            for j in page.get("TrainingJobSummaries", [])]
