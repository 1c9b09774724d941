"""Click options shared by every command that launches (``train``, ``tune``): where the job runs.

``--launcher`` picks a registry entry (``local`` by default); the other options fill
:class:`~bestiary.launch.LaunchOptions`, and each launcher refuses the ones it does not use.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import click

from ..errors import ConfigError
from . import LaunchOptions

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*$")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}
#: Keyword names the options below add to a command.
NAMES = ("launcher", "nproc_per_node", "nnodes", "node_rank", "rdzv_endpoint", "max_restarts", "instance_type",
         "instance_count", "role", "image", "spot", "max_run", "max_wait", "checkpoint_s3", "output_s3",
         "input_s3", "wait", "dry_run", "job_name", "region", "bestiary_source", "requirement", "job_env",
         "job_tag", "keep_alive", "volume_gb", "launch_option")


def parse_duration(text: str | None, flag: str) -> int | None:
    """Seconds in ``90``, ``45m``, ``2h`` or ``1.5d``."""
    if text is None:
        return None
    match = _DURATION.match(str(text))
    if not match:
        raise ConfigError(f"{flag} expects a duration such as 3600, 45m, 2h or 1d, got {text!r}")
    return int(float(match.group(1)) * _UNITS[match.group(2)])


def _pairs(items: tuple[str, ...], flag: str, default_key: str | None = None) -> tuple[tuple[str, str], ...]:
    out = []
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            if default_key is None:
                raise ConfigError(f"{flag} expects KEY=VALUE, got {item!r}")
            key, value = default_key, item
        elif default_key is not None and "://" in key:  # an URI with '=' in it and no channel name
            key, value = default_key, item
        if not key:
            raise ConfigError(f"{flag} expects KEY=VALUE, got {item!r}")
        out.append((key.strip(), value.strip()))
    keys = [k for k, _ in out]
    if len(keys) != len(set(keys)):
        raise ConfigError(f"{flag}: each name may appear once, got {', '.join(keys)}")
    return tuple(out)


#: Options that only the local launcher (torchrun on this machine) uses.
_LOCAL_FLAGS = ("--launcher", "--nnodes", "--node-rank", "--rdzv-endpoint", "--max-restarts")


def remote_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """Add the options of remote launchers (and ``--nproc-per-node``), without ``--launcher`` and
    the local torchrun ones: for commands that have their own ``--launcher``."""
    return launch_options(func, local=False)


def launch_options(func: Callable[..., Any], *, local: bool = True) -> Callable[..., Any]:
    """Add ``--launcher`` and the launch options to a click command.

    :param local: also ``--launcher`` and the local torchrun options (``--nnodes``, ...).
    """
    opts = [
        ("--launcher", click.option("--launcher", default="local", show_default=True,
                     help="Where the job runs: a launcher entry (see `bestiary list launchers`).")),
        ("--nproc-per-node", click.option("--nproc-per-node", type=click.IntRange(min=1), default=None,
                     help="Worker processes per machine (torchrun; use with --strategy ddp). Default: 1 here, "
                          "one per GPU on a rented instance.")),
        ("--nnodes", click.option("--nnodes", type=click.IntRange(min=1), default=1, show_default=True,
                     help="Local launcher: machines taking part; start the same command on each.")),
        ("--node-rank", click.option("--node-rank", type=click.IntRange(min=0), default=0, show_default=True,
                     help="Local launcher: this machine's number, 0 to NNODES-1.")),
        ("--rdzv-endpoint", click.option("--rdzv-endpoint", metavar="HOST:PORT",
                     help="Local launcher: rendezvous address, the same on every machine; default on one "
                          "machine: a free local port.")),
        ("--max-restarts", click.option("--max-restarts", type=click.IntRange(min=0), default=0, show_default=True,
                     help="Local launcher: restart all workers this often after one fails; they resume from the "
                          "last checkpoint.")),
        ("--instance-type", click.option("--instance-type", metavar="TYPE", help="Remote: instance type, e.g. ml.g5.xlarge.")),
        ("--instance-count", click.option("--instance-count", type=click.IntRange(min=1), default=1, show_default=True,
                     help="Remote: instances (torchrun spans them).")),
        ("--role", click.option("--role", metavar="ARN", help="Remote: IAM role the job runs as (or BESTIARY_SAGEMAKER_ROLE).")),
        ("--image", click.option("--image", metavar="URI", help="Remote: container image; default: the framework's PyTorch image.")),
        ("--spot", click.option("--spot/--no-spot", default=False, help="Remote: spot capacity (cheaper, may be interrupted "
                     "and resumed from the last checkpoint).")),
        ("--max-run", click.option("--max-run", metavar="DURATION", help="Remote: run-time limit, e.g. 2h (default 1d).")),
        ("--max-wait", click.option("--max-wait", metavar="DURATION", help="Remote, with --spot: run time plus waiting for "
                     "capacity, e.g. 4h (default: 2 x --max-run).")),
        ("--checkpoint-s3", click.option("--checkpoint-s3", metavar="URI", help="Remote: S3 prefix checkpoints sync to "
                     "(resume after interruptions).")),
        ("--output-s3", click.option("--output-s3", metavar="URI", help="Remote: S3 prefix for the model and outputs.")),
        ("--input-s3", click.option("--input-s3", "input_s3", multiple=True, metavar="[CHANNEL=]URI",
                     help="Remote: input data (repeatable); the channel (default 'training') is mounted at "
                          "$SM_CHANNEL_<CHANNEL>, and data.path defaults to it.")),
        ("--wait", click.option("--wait/--no-wait", default=True, help="Remote: wait for the job and stream its logs.")),
        ("--dry-run", click.option("--dry-run", is_flag=True, help="Print the request and the estimated cost; start and upload "
                     "nothing.")),
        ("--job-name", click.option("--job-name", help="Remote: job name (default: bestiary-ARCH-DATASET-TIME).")),
        ("--region", click.option("--region", help="Remote: AWS region (default: the configured one).")),
        ("--bestiary-source", click.option("--bestiary-source", default="source", show_default=True, metavar="source|installed|wheel:PATH",
                     help="Remote: how bestiary reaches the container: upload this installation, use the image's, "
                          "or upload a wheel.")),
        ("--requirement", click.option("--requirement", multiple=True, metavar="SPEC",
                     help="Remote: extra pip requirement for the container, e.g. a plugin package (repeatable).")),
        ("--job-env", click.option("--job-env", multiple=True, metavar="KEY=VALUE", help="Remote: environment variable (repeatable).")),
        ("--job-tag", click.option("--job-tag", multiple=True, metavar="KEY=VALUE", help="Remote: tag for the job (repeatable).")),
        ("--keep-alive", click.option("--keep-alive", metavar="DURATION", help="Remote: keep instances warm this long for the next job.")),
        ("--volume-gb", click.option("--volume-gb", type=click.IntRange(min=1), help="Remote: storage volume per instance in GB.")),
        ("--launch-option", click.option("--launch-option", multiple=True, metavar="KEY=VALUE",
                     help="A launcher-specific setting (repeatable).")),
    ]
    for flag, option in reversed(opts):
        if local or flag not in _LOCAL_FLAGS:
            func = option(func)
    return func


def pop_launch_options(kwargs: dict[str, Any]) -> tuple[str, LaunchOptions]:
    """Take the launch options out of a command's keyword arguments: ``(launcher, options)``."""
    values = {name: kwargs.pop(name) for name in NAMES if name in kwargs}
    extra: dict[str, Any] = {}
    for key, raw in _pairs(values.get("launch_option", ()), "--launch-option"):
        from ..engine.config import apply_set  # TOML values: numbers and booleans keep their type

        apply_set(extra, f"{key}={raw}")
    options = LaunchOptions(
        nproc_per_node=values.get("nproc_per_node"), nnodes=values.get("nnodes", 1),
        node_rank=values.get("node_rank", 0), rdzv_endpoint=values.get("rdzv_endpoint"),
        max_restarts=values.get("max_restarts", 0), instance_type=values.get("instance_type"),
        instance_count=values.get("instance_count", 1), role=values.get("role"), image=values.get("image"),
        spot=bool(values.get("spot")), max_run=parse_duration(values.get("max_run"), "--max-run"),
        max_wait=parse_duration(values.get("max_wait"), "--max-wait"), checkpoint_s3=values.get("checkpoint_s3"),
        output_s3=values.get("output_s3"), inputs=_pairs(values.get("input_s3", ()), "--input-s3", "training"),
        wait=values.get("wait", True), dry_run=bool(values.get("dry_run")), job_name=values.get("job_name"),
        region=values.get("region"), source=values.get("bestiary_source", "source"),
        requirements=tuple(values.get("requirement", ())),
        environment=_pairs(values.get("job_env", ()), "--job-env"), tags=_pairs(values.get("job_tag", ()), "--job-tag"),
        keep_alive=parse_duration(values.get("keep_alive"), "--keep-alive") or 0, volume_gb=values.get("volume_gb"),
        extra=extra,
    )
    return values.get("launcher", "local"), options
