"""The ``sagemaker`` launcher: a run (or a tuning study) as Amazon SageMaker jobs, through the
SageMaker Python SDK v3 (``sagemaker.train.ModelTrainer``; ``pip install 'bestiary[sagemaker]'``).

The job uploads a code directory (see :mod:`.staging`) whose entry script runs
``bestiary train --config bestiary_config.toml`` inside the container, so the job trains exactly
as a local run. Several processes or instances use the SDK's ``Torchrun`` distribution.
Everything but :meth:`SageMakerLauncher.launch` and the job commands works without the SDK:
``--dry-run`` builds the request from bestiary's own fields and uploads nothing.
"""

from __future__ import annotations

import getpass
import os
import re
import shlex
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from bestiary.extend import (
    REMOTE_OPTIONS,
    ConfigError,
    Job,
    Launcher,
    LaunchResult,
    MissingDependencyError,
    UserError,
    __version__,
    parse_duration,
    parse_pairs,
    record_job,
)

from .pricing import estimate, gpus

#: The PyTorch framework image used when --image is not given (a SageMaker deep learning container).
FRAMEWORK_VERSION = "2.8"
DEFAULT_INSTANCE = "ml.m5.xlarge"
DEFAULT_MAX_RUN = 86400  # SageMaker's own default: one day
CHECKPOINT_LOCAL = "/opt/ml/checkpoints"
ROLE_ENV = "BESTIARY_SAGEMAKER_ROLE"
_INSTANCE_RE = re.compile(r"^ml\.[a-z0-9]+\.[a-z0-9]+$")


#: The region a dry run shows when none is configured (a plan needs one for the image URI).
PLAN_REGION = "us-east-1"


def install_hint(extra: str = "sagemaker") -> str:
    """The pip command that adds ``extra`` from where this bestiary came: the folder it was
    installed from (a checkout), or the package index."""
    import json
    from importlib.metadata import distributions

    # The installed copy records where it came from; a build's egg-info in the current folder
    # (also named bestiary) records nothing and is passed over.
    url = ""
    for dist in distributions(name="bestiary"):
        try:
            url = json.loads(dist.read_text("direct_url.json") or "{}").get("url", "")
        except ValueError:
            continue
        if url:
            break
    if url.startswith("file:"):
        from urllib.parse import urlparse
        from urllib.request import url2pathname

        return f"pip install '{url2pathname(urlparse(url).path)}[{extra}]'"
    return f"pip install 'bestiary[{extra}]'"


def require_sdk() -> None:
    """Fail with the remedy when the SageMaker Python SDK v3 is missing."""
    try:
        import sagemaker.train  # noqa: F401  # the SDK takes seconds to import: only when talking to AWS
    except ImportError as exc:
        raise MissingDependencyError(f"the sagemaker launcher needs the SageMaker Python SDK v3: {install_hint()}") from exc


@contextmanager
def aws_errors() -> Iterator[None]:
    """AWS's answers that are the user's to fix (no credentials, no permission, no network) as one
    line with the remedy; anything else goes up as it is."""
    try:
        from botocore import exceptions as aws
    except ImportError:  # no SDK: nothing of AWS can fail here
        yield
        return
    try:
        yield
    except (aws.NoCredentialsError, aws.PartialCredentialsError) as exc:
        raise UserError(f"no usable AWS credentials ({exc}): run `aws configure`, set AWS_PROFILE, or set "
                        "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY") from exc
    except aws.ClientError as exc:
        error = exc.response.get("Error", {})
        code, message = error.get("Code", "?"), error.get("Message", str(exc))
        if code in _ACCESS_CODES:
            raise UserError(f"AWS refused the request ({code}: {message}); check the credentials and their "
                            "permissions (docs/sagemaker.md#permissions)") from exc
        raise
    except aws.EndpointConnectionError as exc:
        raise UserError(f"cannot reach AWS ({exc}); check the network and --region") from exc


_ACCESS_CODES = {"AccessDenied", "AccessDeniedException", "ExpiredToken", "ExpiredTokenException",
                 "InvalidClientTokenId", "UnrecognizedClientException", "SignatureDoesNotMatch"}


@dataclass
class Request:
    """Everything one SageMaker job is made of, in bestiary's own terms (JSON values)."""

    base_job_name: str
    region: str
    role: str
    image: str
    instance_type: str
    instance_count: int
    nproc_per_node: int
    spot: bool
    max_run: int
    max_wait: int | None
    checkpoint_s3: str | None
    output_s3: str | None
    channels: dict[str, str]
    environment: dict[str, str]
    tags: dict[str, str]
    hyperparameters: dict[str, Any]
    source: str
    requirements: tuple[str, ...]
    keep_alive: int
    volume_gb: int | None
    config: Any = None
    argv: tuple[str, ...] = ()
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def distributed(self) -> bool:
        return self.nproc_per_node > 1 or self.instance_count > 1

    def job_file(self) -> dict[str, Any]:
        job: dict[str, Any] = {"kind": "command" if self.argv else "train", "nproc_per_node": self.nproc_per_node,
                               "instance_count": self.instance_count, "rdzv_port": int(self.extra.get("rdzv_port", 29400))}
        if self.argv:
            job["argv"] = list(self.argv)
        return job


def configured_region(explicit: str | None) -> str | None:
    """``--region``, else the environment's, else the AWS configuration's (``~/.aws/config``)."""
    region = explicit or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    if region:
        return region
    try:
        import boto3  # only to read the configured region (~/.aws/config)
    except ImportError:
        return None
    return boto3.session.Session().region_name or None


def _region(explicit: str | None) -> str:
    region = configured_region(explicit)
    if not region:
        raise ConfigError("no AWS region: pass --region (e.g. us-east-1), or set AWS_REGION / `aws configure`")
    return region


def _image(explicit: str | None, region: str, instance_type: str, version: str) -> str:
    if explicit:
        return explicit
    require_sdk()
    from sagemaker.core import image_uris  # the SDK's table of framework images per region

    try:
        return str(image_uris.retrieve(framework="pytorch", region=region, version=version,
                                       instance_type=instance_type, image_scope="training"))
    except ValueError as exc:
        raise ConfigError(f"no PyTorch {version} training image for {instance_type} in {region} ({exc}); "
                          "pass --image URI or --launch-option framework_version=X.Y") from exc


def _slug(text: str, limit: int) -> str:
    return re.sub(r"[^a-zA-Z0-9-]+", "-", text).strip("-")[:limit].strip("-")


def _check_config(cfg: Any, distributed: bool) -> None:
    """Look the config's names up (no torch), so a typo fails here rather than in a paid job."""
    from bestiary.extend import get_entry

    get_entry("architectures", cfg.arch)
    get_entry("datasets", cfg.dataset)
    strategy = get_entry("strategies", cfg.strategy)
    if distributed and "distributed" not in strategy.tags:
        raise ConfigError(f"strategy {strategy.name!r} runs in one process, but the job starts several "
                          "(--nproc-per-node, --instance-count, or GPUs of the instance); pass --strategy ddp, "
                          "or --nproc-per-node 1 with one instance")


def _data_path_from_channel(cfg: Any, channels: dict[str, str]) -> Any:
    """Point ``data.path`` at the first channel when the dataset reads a path and none is set."""
    if not channels or "path" in cfg.data:
        return cfg
    import inspect

    from bestiary.extend import get_entry

    try:
        params = inspect.signature(get_entry("datasets", cfg.dataset).load()).parameters
    except (TypeError, ValueError):
        return cfg
    if "path" not in params:
        return cfg
    first = next(iter(channels))
    return cfg.replace(data={**cfg.data, "path": "${SM_CHANNEL_" + first.upper() + "}"})


class SageMakerLauncher(Launcher):
    """Amazon SageMaker training jobs (``train``) and hyperparameter tuning jobs (``tune``)."""

    name = "sagemaker"
    accepts = REMOTE_OPTIONS | {"nproc_per_node", "extra"}
    kinds = frozenset({"train", "tune", "command"})
    sample_settings: ClassVar[dict[str, Any]] = {"role": "arn:aws:iam::111122223333:role/bestiary-conformance"}

    # -- the request ------------------------------------------------------------------------

    def request(self, job: Job, *, planning: bool = False) -> Request:
        """The job's request, validated; needs no SDK unless the default image is looked up.

        :param planning: for a dry run: without a configured region, show :data:`PLAN_REGION`'s.
        """
        self.check(job)
        o = job.options
        cfg = job.config
        if cfg is None and job.kind != "command":
            raise ConfigError("a SageMaker job needs a run config (ARCH and --dataset, or --config FILE)")
        if job.kind == "command" and not job.argv:
            raise ConfigError("name the bestiary command the job runs, e.g. `bestiary jobs submit ... -- bench run NAME`")
        own = self.settings(job)  # [options.sagemaker] and --launch-option values
        spot = bool(own.get("spot"))
        inputs = parse_pairs(list(own.get("input_s3") or ()), "--input-s3", "training")
        checkpoint_s3, output_s3 = own.get("checkpoint_s3"), own.get("output_s3")
        keep_alive = parse_duration(own.get("keep_alive"), "--keep-alive") or 0
        instance_type = o.instance_type or DEFAULT_INSTANCE
        if not _INSTANCE_RE.match(instance_type):
            raise ConfigError(f"--instance-type {instance_type!r} is not a SageMaker instance type such as "
                              "ml.g5.xlarge (see docs/sagemaker.md#choosing-instances)")
        role = own.get("role") or os.environ.get(ROLE_ENV)
        if not role:
            raise ConfigError(f"a SageMaker job runs as an IAM role: pass --role arn:aws:iam::ACCOUNT:role/NAME or set "
                              f"{ROLE_ENV} (docs/sagemaker.md#permissions lists what the role needs)")
        region = (configured_region(o.region) or PLAN_REGION) if planning else _region(o.region)
        # a command job runs one process, which may start its own workers (a scaling benchmark)
        nproc = 1 if job.kind == "command" else o.nproc_per_node or max(gpus(instance_type) or 1, 1)
        max_run = o.max_run or DEFAULT_MAX_RUN
        max_wait = parse_duration(own.get("max_wait"), "--max-wait")
        if spot:
            max_wait = max_wait or 2 * max_run
            if max_wait < max_run:
                raise ConfigError(f"--max-wait ({max_wait} s) must be at least --max-run ({max_run} s): it counts the "
                                  "run time plus the wait for spot capacity")
        elif max_wait is not None:
            raise ConfigError("--max-wait applies to spot jobs only; add --spot or drop --max-wait")
        for name, _uri in inputs:
            if not re.fullmatch(r"[A-Za-z0-9\.\-_]+", name) or name in ("code", "sm_drivers"):
                raise ConfigError(f"--input-s3 channel name {name!r}: use letters, digits, '.', '-' or '_' "
                                  "(code and sm_drivers are taken)")
        for uri in (checkpoint_s3, output_s3):
            if uri is not None and not uri.startswith("s3://"):
                raise ConfigError(f"{uri!r} is not an S3 URI (s3://bucket/prefix)")
        if keep_alive and spot:
            raise ConfigError("--keep-alive (warm pools) does not work with --spot; drop one of them")
        channels = dict(inputs)
        if cfg is not None:
            _check_config(cfg, nproc > 1 or o.instance_count > 1)
            cfg = _data_path_from_channel(cfg, channels)
            name = f"bestiary-{cfg.arch.split(':')[-1]}-{cfg.dataset.split(':')[-1]}"
        else:
            name = "bestiary-" + "-".join(a for a in job.argv[:3] if not a.startswith("-"))
        version = str(o.extra.get("framework_version", FRAMEWORK_VERSION))
        base = o.job_name or _slug(name, 40)
        tags = {"bestiary:version": __version__, "bestiary:user": getpass.getuser(), "bestiary:kind": job.kind,
                **dict(o.tags)}
        environment = {"PYTHONUNBUFFERED": "1", **dict(o.environment)}
        return Request(base_job_name=_slug(base, 50) if not o.job_name else o.job_name, region=region, role=role,
                       image=_image(o.image, region, instance_type, version), instance_type=instance_type,
                       instance_count=o.instance_count, nproc_per_node=nproc, spot=spot, max_run=max_run,
                       max_wait=max_wait, checkpoint_s3=checkpoint_s3, output_s3=output_s3, channels=channels,
                       environment=environment, tags=tags, hyperparameters={}, source=o.source,
                       requirements=o.requirements, keep_alive=keep_alive, volume_gb=own.get("volume_gb"),
                       config=cfg, argv=tuple(job.argv), extra=dict(o.extra))

    def plan(self, job: Job) -> dict[str, Any]:
        from .tune_options import with_study

        job = with_study(job)
        req = self.request(job, planning=True)
        plan = describe_request(req, job.kind)
        if configured_region(job.options.region) is None:
            plan["note"] = (f"no AWS region configured: showing {PLAN_REGION}; pass --region or set AWS_REGION "
                            "before launching")
        if job.kind == "tune":
            from .tuning_job import tuning_plan

            plan.update(tuning_plan(req, job))
        return plan

    # -- launching ----------------------------------------------------------------------------

    def launch(self, job: Job) -> LaunchResult:
        from .tune_options import with_study

        job = with_study(job)
        req = self.request(job)
        require_sdk()
        with aws_errors():
            return self._launch(job, req)

    def _launch(self, job: Job, req: Request) -> LaunchResult:
        from .staging import stage
        from .trainer import input_channels, model_trainer

        with tempfile.TemporaryDirectory(prefix="bestiary-sagemaker-") as tmp:
            code = Path(tmp) / "code"
            staged = stage(code, req.config, req.job_file(), source=req.source, requirements=req.requirements)
            trainer = model_trainer(req, code)  # imports the SDK
            if job.kind == "tune":
                from .tuning_job import launch_tuning

                return launch_tuning(req, job, trainer, staged)
            trainer.train(input_data_config=input_channels(req), wait=False)
            training_job = trainer._latest_training_job  # the SDK keeps the created job here
        name = training_job.training_job_name
        details = {"region": req.region, "arn": training_job.training_job_arn, "instance_type": req.instance_type,
                   "instance_count": req.instance_count, "staged": staged}
        record_job(name, self.name, job.kind, details)  # before waiting: Ctrl-C leaves the job running
        if job.options.wait:
            try:
                training_job.wait(logs=True)
            except Exception as exc:  # the SDK raises FailedStatusError for a failed job
                if type(exc).__name__ != "FailedStatusError":
                    raise
        exit_code = 0
        if job.options.wait:
            training_job.refresh()
            details["status"] = training_job.training_job_status
            exit_code = 0 if details["status"] == "Completed" else 1
            if exit_code:
                details["failure_reason"] = str(training_job.failure_reason)
        return LaunchResult(exit_code=exit_code, job_name=name, details=details)

    # -- jobs ---------------------------------------------------------------------------------

    def describe(self, job_name: str, *, region: str | None = None) -> dict[str, Any]:
        from .jobs import describe

        with aws_errors():
            return describe(job_name, _region(region))

    def logs(self, job_name: str, *, region: str | None = None, limit: int = 200) -> list[str]:
        from .jobs import logs

        with aws_errors():
            return logs(job_name, _region(region), limit)

    def stop(self, job_name: str, *, region: str | None = None) -> None:
        from .jobs import stop

        with aws_errors():
            stop(job_name, _region(region))

    def list_remote(self, *, region: str | None = None) -> list[dict[str, Any]]:
        """Training jobs named ``bestiary*`` in the region, started from any machine."""
        from .jobs import list_remote

        with aws_errors():
            return list_remote(_region(region))


def describe_request(req: Request, kind: str) -> dict[str, Any]:
    """The request as printed by ``--dry-run`` (and compared with the created job in tests)."""
    distribution: dict[str, Any] = (
        {"type": "torchrun", "process_count_per_node": req.nproc_per_node, "nodes": req.instance_count}
        if req.distributed else {"type": "single process"})
    return {
        "launcher": "sagemaker", "kind": kind, "job_name": f"{req.base_job_name}-<timestamp>", "region": req.region,
        "role": req.role, "image": req.image,
        "compute": {"instance_type": req.instance_type, "instance_count": req.instance_count, "spot": req.spot,
                    "volume_gb": req.volume_gb, "keep_alive_s": req.keep_alive or None},
        "distribution": distribution,
        "entry": "bestiary_entry.py -> " + (f"bestiary {shlex.join(req.argv)} (in the checkpoint folder)" if req.argv
                                            else "bestiary train --config bestiary_config.toml --resume-existing"),
        "source": {"bestiary": req.source, "requirements": list(req.requirements)},
        "hyperparameters": dict(req.hyperparameters),
        "channels": dict(req.channels),
        "checkpoints": {"s3_uri": req.checkpoint_s3 or "s3://<default bucket>/<job>/checkpoints",
                        "local_path": CHECKPOINT_LOCAL},
        "output_s3": req.output_s3 or "s3://<default bucket>/<job>/",
        "stopping": {"max_run_s": req.max_run, "max_wait_s": req.max_wait},
        "environment": dict(req.environment), "tags": dict(req.tags),
        "config": req.config.to_dict() if req.config is not None else None,
        "estimated_cost_usd": estimate(req.instance_type, req.instance_count, req.max_run),
    }

