"""Launchers: where a run, a tuning study or a benchmark executes.

A launcher is a registry entry of the kind ``launchers`` (hook ``register_launchers``) whose
factory returns a :class:`Launcher`. The built-in ``local`` launcher trains in this process or
starts torchrun workers; ``sagemaker`` sends the same run to Amazon SageMaker, where the container
runs :mod:`bestiary.launch.container`, which calls ``bestiary train --config FILE`` as a local
run would. Other clouds plug in the same way.

This package imports nothing heavy: launchers import torch or a cloud SDK inside their methods.
"""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any

from ..errors import ConfigError

#: Options only a launcher that starts processes on this machine understands.
LOCAL_OPTIONS = frozenset({"nnodes", "node_rank", "rdzv_endpoint", "max_restarts"})
#: Options of launchers that rent machines (instances, images, storage).
REMOTE_OPTIONS = frozenset({
    "instance_type", "instance_count", "role", "image", "spot", "max_run", "max_wait", "checkpoint_s3",
    "output_s3", "inputs", "wait", "job_name", "region", "source", "requirements", "environment",
    "tags", "keep_alive", "volume_gb",
})


@dataclass(frozen=True)
class LaunchOptions:
    """How and where to start a job; each launcher says which of these it understands.

    :param nproc_per_node: worker processes per machine; ``None``: the launcher's default (1 on this
        machine, one per GPU of a rented instance).
    :param nnodes: machines taking part (local launcher: start the command on each).
    :param node_rank: this machine's number (local launcher).
    :param rdzv_endpoint: ``HOST:PORT`` of the rendezvous (local launcher).
    :param max_restarts: restarts of all workers after one fails (local launcher).
    :param instance_type: machine type to rent (``ml.g5.xlarge``).
    :param instance_count: machines to rent.
    :param role: IAM role the job runs as.
    :param image: container image URI; ``None``: the launcher's default framework image.
    :param spot: use spare capacity at a lower price; the job may be interrupted and resumed.
    :param max_run: limit of the job's run time in seconds.
    :param max_wait: limit of run time plus waiting for spare capacity in seconds (spot only).
    :param checkpoint_s3: where checkpoints are synced, so that an interrupted job resumes.
    :param output_s3: where the model and outputs go.
    :param inputs: ``(channel, uri)`` pairs of input data.
    :param wait: wait for the job to end (and stream its logs).
    :param dry_run: print the request and the cost estimate; start and upload nothing.
    :param job_name: the job's name (default: generated from the arch and dataset).
    :param region: cloud region (default: the SDK's configured one).
    :param source: how bestiary reaches the container: ``source`` (upload this installation's
        package), ``wheel:PATH`` (upload and install a wheel) or ``installed`` (the image has it).
    :param requirements: extra pip requirements installed in the container (third-party plugins).
    :param environment: ``(name, value)`` environment variables for the job.
    :param tags: ``(key, value)`` tags for the job.
    :param keep_alive: seconds to keep the instances warm for the next job (0: off).
    :param volume_gb: size of the instance's storage volume in GB.
    :param extra: launcher-specific settings (``--launch-option key=value``).
    """

    nproc_per_node: int | None = None
    nnodes: int = 1
    node_rank: int = 0
    rdzv_endpoint: str | None = None
    max_restarts: int = 0
    instance_type: str | None = None
    instance_count: int = 1
    role: str | None = None
    image: str | None = None
    spot: bool = False
    max_run: int | None = None
    max_wait: int | None = None
    checkpoint_s3: str | None = None
    output_s3: str | None = None
    inputs: tuple[tuple[str, str], ...] = ()
    wait: bool = True
    dry_run: bool = False
    job_name: str | None = None
    region: str | None = None
    source: str = "source"
    requirements: tuple[str, ...] = ()
    environment: tuple[tuple[str, str], ...] = ()
    tags: tuple[tuple[str, str], ...] = ()
    keep_alive: int = 0
    volume_gb: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def changed(self) -> set[str]:
        """Names of the options that differ from their defaults."""
        defaults = LaunchOptions()
        return {f.name for f in dataclasses.fields(self)
                if f.name != "dry_run" and getattr(self, f.name) != getattr(defaults, f.name)}


@dataclass(frozen=True)
class Job:
    """One thing to launch.

    :param kind: ``train`` (one run), ``tune`` (a hyperparameter study) or ``command`` (any
        ``bestiary`` command line, such as a benchmark).
    :param options: where and how.
    :param config: the run config (``train``, ``tune``: the base config of every trial).
    :param resume: a local run directory to continue (local launcher).
    :param quiet: no progress bar.
    :param study: the tuning study (``tune``): see :class:`bestiary.launch.tuning.Study`.
    :param argv: the ``bestiary`` arguments of a ``command`` job.
    """

    kind: str
    options: LaunchOptions
    config: Any = None
    resume: str | None = None
    quiet: bool | None = None
    study: Any = None
    argv: tuple[str, ...] = ()


@dataclass
class LaunchResult:
    """What a launch gave back.

    :param exit_code: 0 when the job was started (or, when waited for, succeeded).
    :param job_name: the remote job's name, if any.
    :param summary: the run summary of a local run.
    :param details: launcher-specific facts (ARN, status, S3 locations).
    """

    exit_code: int = 0
    job_name: str | None = None
    summary: dict[str, Any] | None = None
    details: dict[str, Any] = field(default_factory=dict)


class Launcher(ABC):
    """Base class of launchers: subclass it, set :attr:`name` and :attr:`accepts`, and implement
    :meth:`plan` and :meth:`launch`; launchers of remote jobs also implement :meth:`describe`,
    :meth:`logs` and :meth:`stop` for ``bestiary jobs``."""

    #: The entry's name.
    name: str = ""
    #: Names of the :class:`LaunchOptions` fields this launcher understands.
    accepts: frozenset[str] = frozenset()
    #: Job kinds it can start.
    kinds: frozenset[str] = frozenset({"train"})

    def _unsupported(self, what: str) -> ConfigError:
        return ConfigError(f"launcher {self.name!r} {what}: `bestiary jobs` serves launchers of remote jobs "
                           "(see `bestiary list launchers`)")

    def check(self, job: Job) -> None:
        """Refuse options and job kinds this launcher does not understand, naming the remedy."""
        if job.kind not in self.kinds:
            raise ConfigError(f"launcher {self.name!r} cannot start {job.kind} jobs (it starts: "
                              f"{', '.join(sorted(self.kinds))})")
        unknown = sorted(job.options.changed() - self.accepts)
        if unknown:
            flags = ", ".join("--" + n.replace("_", "-").replace("inputs", "input-s3") for n in unknown)
            hint = ("; they are for remote launchers such as --launcher sagemaker"
                    if set(unknown) & REMOTE_OPTIONS and self.name == "local" else "")
            raise ConfigError(f"launcher {self.name!r} does not use {flags}{hint}; drop them "
                              "(see `bestiary info launchers:NAME`)")

    @abstractmethod
    def plan(self, job: Job) -> dict[str, Any]:
        """The request this launcher would send, as JSON values, without starting or uploading
        anything (``--dry-run``); includes ``estimated_cost_usd`` where the launcher knows prices."""

    @abstractmethod
    def launch(self, job: Job) -> LaunchResult:
        """Start ``job``; wait for it when ``job.options.wait``."""

    def describe(self, job_name: str, *, region: str | None = None) -> dict[str, Any]:
        """Status and facts of a job this launcher started."""
        raise self._unsupported("does not track jobs")

    def logs(self, job_name: str, *, region: str | None = None, limit: int = 200) -> list[str]:
        """The last ``limit`` log lines of a job."""
        raise self._unsupported("does not keep job logs")

    def stop(self, job_name: str, *, region: str | None = None) -> None:
        """Ask a running job to stop (it gets SIGTERM and saves a checkpoint)."""
        raise self._unsupported("cannot stop jobs")


def get_launcher(name: str) -> Launcher:
    """Build the launcher called ``name`` (bare or ``plugin:name``) from the registry.

    :raises UnknownEntryError: with close matches when no plugin registers that name.
    """
    from ..api import get_entry

    entry = get_entry("launchers", name)
    launcher = entry.build()
    if not isinstance(launcher, Launcher):
        raise TypeError(f"launcher {entry.qualified_name!r} built a {type(launcher).__name__}, not a "
                        f"bestiary.launch.Launcher; report it to {entry.provenance.distribution}")
    return launcher


__all__ = ["LOCAL_OPTIONS", "REMOTE_OPTIONS", "Job", "LaunchOptions", "LaunchResult", "Launcher", "get_launcher"]
