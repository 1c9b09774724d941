"""Click options shared by every command that launches (``train``, ``tune``): where the job runs.

``--launcher`` picks a registry entry (``local`` by default); the other options fill
:class:`~bestiary.launch.LaunchOptions`, and each launcher refuses the ones it does not use. A
launcher's own options (SageMaker's ``--role``, ``--spot``, ...) come from its plugin (hook
``add_options``) and land in the run config's options table named after the launcher.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from ..launch import LaunchOptions, parse_duration, parse_pairs

#: Keyword names the options below add to a command.
NAMES = ("launcher", "nproc_per_node", "nnodes", "node_rank", "rdzv_endpoint", "max_restarts", "instance_type",
         "instance_count", "image", "max_run", "wait", "dry_run", "job_name", "region", "bestiary_source",
         "requirement", "job_env", "job_tag", "launch_option")


#: Options that only the local launcher (torchrun on this machine) uses.
_LOCAL_FLAGS = ("--launcher", "--nnodes", "--node-rank", "--rdzv-endpoint", "--max-restarts")


def remote_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """Add the options of launchers that rent machines (and ``--nproc-per-node``), without
    ``--launcher`` and the local torchrun ones: for commands that have their own ``--launcher``."""
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
        ("--image", click.option("--image", metavar="URI", help="Remote: container image; default: the framework's PyTorch image.")),
        ("--max-run", click.option("--max-run", metavar="DURATION", help="Remote: run-time limit, e.g. 2h (default 1d).")),
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
    for key, raw in parse_pairs(values.get("launch_option", ()), "--launch-option"):
        from ..engine.config import apply_set  # TOML values: numbers and booleans keep their type

        apply_set(extra, f"{key}={raw}")
    options = LaunchOptions(
        nproc_per_node=values.get("nproc_per_node"), nnodes=values.get("nnodes", 1),
        node_rank=values.get("node_rank", 0), rdzv_endpoint=values.get("rdzv_endpoint"),
        max_restarts=values.get("max_restarts", 0), instance_type=values.get("instance_type"),
        instance_count=values.get("instance_count", 1), image=values.get("image"),
        max_run=parse_duration(values.get("max_run"), "--max-run"), wait=values.get("wait", True), dry_run=bool(values.get("dry_run")), job_name=values.get("job_name"),
        region=values.get("region"), source=values.get("bestiary_source", "source"),
        requirements=tuple(values.get("requirement", ())),
        environment=parse_pairs(values.get("job_env", ()), "--job-env"),
        tags=parse_pairs(values.get("job_tag", ()), "--job-tag"), extra=extra,
    )
    return values.get("launcher", "local"), options
