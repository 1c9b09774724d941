"""Helpers for the SageMaker tests, which never reach AWS.

- ``aws``: fake credentials, role validation and the SDK's telemetry off, AWS emulated in-process
  by moto, and a guard on ``socket.connect`` that refuses (and records) any connection leaving
  127.0.0.0/8. The emulator stands in for AWS, which cannot be reached from here; it runs no
  container.
- ``run_toolkit``: the container side run for real by the ``sagemaker-training`` toolkit in a
  temporary ``SAGEMAKER_BASE_DIR`` laid out as SageMaker lays out ``/opt/ml``.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

HERE = Path(__file__).resolve().parent
ENGINE_TESTS = HERE.parent / "engine"
REGION = "us-east-1"
ROLE = "arn:aws:iam::123456789012:role/bestiary-training"
IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/pytorch-training:2.8-cpu-py312"
TELEMETRY_OFF = "SchemaVersion: '1.0'\nSageMaker:\n  PythonSDK:\n    Modules:\n      TelemetryOptOut: true\n"


@contextlib.contextmanager
def toy_host() -> Iterator[Any]:
    """The built-ins and the toy zoo as the process-wide plugin host, restored afterwards."""
    import bestiary

    if str(ENGINE_TESTS) not in sys.path:
        sys.path.insert(0, str(ENGINE_TESTS))
    import toyzoo

    before = bestiary.get_host()
    host = bestiary.PluginHost(autoload=False, disabled=())
    host.add_plugin(toyzoo, "toyzoo")
    bestiary.reset_host(host)
    try:
        yield host
    finally:
        bestiary.reset_host(before)


@pytest.fixture(scope="module")
def aws(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """AWS emulated by moto in this process, with nothing allowed off the machine."""
    moto = pytest.importorskip("moto")
    pytest.importorskip("sagemaker.train", reason="needs the sagemaker extra")
    tmp = tmp_path_factory.mktemp("aws")
    (tmp / "sagemaker.yaml").write_text(TELEMETRY_OFF)
    leaks: list[Any] = []
    connect = socket.socket.connect

    def guarded(sock: socket.socket, address: Any) -> Any:
        host = address[0] if isinstance(address, tuple) else str(address)
        if sock.family in (socket.AF_INET, socket.AF_INET6) and not (str(host).startswith("127.") or host == "::1"):
            leaks.append(address)
            raise OSError(f"the SageMaker tests must not leave this machine (tried {address})")
        return connect(sock, address)

    with pytest.MonkeyPatch.context() as mp:
        for key in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL"):
            mp.delenv(key, raising=False)
        mp.setenv("AWS_ACCESS_KEY_ID", "testing")
        mp.setenv("AWS_SECRET_ACCESS_KEY", "testing")
        mp.setenv("AWS_DEFAULT_REGION", REGION)
        mp.setenv("AWS_REGION", REGION)
        mp.setenv("SAGEMAKER_VALIDATE_ROLE", "false")  # moto lacks the IAM call the SDK checks roles with
        mp.setenv("SAGEMAKER_USER_CONFIG_OVERRIDE", str(tmp / "sagemaker.yaml"))  # TelemetryOptOut
        mp.setenv("BESTIARY_JOBS_FILE", str(tmp / "jobs.jsonl"))
        mp.setattr(socket.socket, "connect", guarded)
        with moto.mock_aws():
            import boto3

            boto3.client("s3", region_name=REGION).create_bucket(Bucket="bestiary-data")
            state: dict[str, Any] = {"tmp": tmp, "leaks": leaks}
            yield state
    assert not leaks, f"connections left the machine: {leaks}"


def download_prefix(uri: str, target: Path) -> Path:
    """Copy every object under the S3 prefix ``uri`` (of the emulator) into ``target``."""
    import boto3

    bucket, _, prefix = uri[len("s3://"):].partition("/")
    s3 = boto3.client("s3", region_name=REGION)
    keys = [o["Key"] for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
            for o in page.get("Contents", [])]
    assert keys, f"nothing uploaded under {uri}"
    for key in keys:
        dest = target / key[len(prefix):].lstrip("/")
        dest.parent.mkdir(parents=True, exist_ok=True)
        s3.download_file(bucket, key, str(dest))
    return target


def opt_ml(root: Path, code: Path, hyperparameters: dict[str, Any], *, hosts: tuple[str, ...] = ("127.0.0.1",),
           channels: tuple[str, ...] = ("training",)) -> Path:
    """A SageMaker base directory (``/opt/ml``) for the toolkit: config files, channels, model and
    output folders. Hosts are loopback addresses, which resolve (the toolkit waits for DNS)."""
    base = root / "opt_ml"
    for sub in ("input/config", "model", "output/data"):
        (base / sub).mkdir(parents=True, exist_ok=True)
    for channel in channels:
        (base / "input" / "data" / channel).mkdir(parents=True, exist_ok=True)
    hps = {"sagemaker_program": "bestiary_entry.py", "sagemaker_submit_directory": str(code), **hyperparameters}
    config = base / "input" / "config"
    config.joinpath("hyperparameters.json").write_text(json.dumps({k: json.dumps(v) for k, v in hps.items()}))
    config.joinpath("resourceconfig.json").write_text(json.dumps(
        {"current_host": hosts[0], "hosts": list(hosts), "network_interface_name": "lo"}))
    config.joinpath("inputdataconfig.json").write_text(json.dumps(
        {c: {"TrainingInputMode": "File", "S3DistributionType": "FullyReplicated", "RecordWrapperType": "None"}
         for c in channels}))
    return base


def toolkit_env(base: Path, *, framework: bool = False, checkpoints: Path | None = None,
                environment: dict[str, str] | None = None) -> dict[str, str]:
    """The environment the container would have: the base directory, the toy zoo on the path,
    torchrun on PATH, with ``framework`` the PyTorch images' training module, and the job's
    ``environment``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SM_", "BESTIARY_", "SAGEMAKER_", "AWS_"))}
    env.update(SAGEMAKER_BASE_DIR=str(base), BESTIARY_PLUGINS="toyzoo", PYTHONPATH=str(ENGINE_TESTS),
               OMP_NUM_THREADS="1", PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", ""))
    if framework:
        env["SAGEMAKER_TRAINING_MODULE"] = "sagemaker_pytorch_container.training:main"
    if checkpoints is not None:
        env["BESTIARY_CHECKPOINT_DIR"] = str(checkpoints)
    env.update(environment or {})
    return env


def run_toolkit(base: Path, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    """``python -m sagemaker_training.cli.train``, the program the framework images start."""
    pytest.importorskip("sagemaker_training", reason="needs the sagemaker-training toolkit")
    return subprocess.run([sys.executable, "-m", "sagemaker_training.cli.train"], env=toolkit_env(base, **kwargs),
                          cwd=base.parent, capture_output=True, text=True, timeout=300, check=False)
