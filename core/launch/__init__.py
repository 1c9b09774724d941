"""Launchers: where a run, a tuning study or a benchmark executes.

A launcher is a registry entry of the kind ``launchers`` (hook ``register_launchers``) whose
factory returns a :class:`Launcher`. The built-in ``local`` launcher trains in this process or
starts torchrun workers; plugins add others (the built-in ``sagemaker`` plugin sends the same run
to Amazon SageMaker). A launcher's own settings (an IAM role, spot capacity, storage URIs) are
run options its plugin declares (hook ``add_options``) in the options table named after the
launcher; :meth:`Launcher.settings` reads them back.

This package imports nothing heavy, neither click nor the CLI: launchers import torch or a cloud
SDK inside their methods.
"""

from __future__ import annotations

import dataclasses
import re
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar

from ..errors import ConfigError

#: Options only a launcher that starts processes on this machine understands.
LOCAL_OPTIONS = frozenset({"nnodes", "node_rank", "rdzv_endpoint", "max_restarts"})
#: Options of launchers that rent machines (instances, images, storage).
REMOTE_OPTIONS = frozenset({
    "instance_type", "instance_count", "image", "max_run", "wait", "job_name", "region", "source",
    "requirements", "environment", "tags",
})
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*$")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


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
    :param image: container image URI; ``None``: the launcher's default framework image.
    :param max_run: limit of the job's run time in seconds.
    :param wait: wait for the job to end (and stream its logs).
    :param dry_run: print the request and the cost estimate; start and upload nothing.
    :param job_name: the job's name (default: generated from the arch and dataset).
    :param region: cloud region (default: the SDK's configured one).
    :param source: how bestiary reaches the container: ``source`` (upload this installation's
        package), ``wheel:PATH`` (upload and install a wheel) or ``installed`` (the image has it).
    :param requirements: extra pip requirements installed in the container (third-party plugins).
    :param environment: ``(name, value)`` environment variables for the job.
    :param tags: ``(key, value)`` tags for the job.
    :param extra: launcher-specific settings (``--launch-option key=value``, and a command job's
        launcher options); see :meth:`Launcher.settings`.
    """

    nproc_per_node: int | None = None
    nnodes: int = 1
    node_rank: int = 0
    rdzv_endpoint: str | None = None
    max_restarts: int = 0
    instance_type: str | None = None
    instance_count: int = 1
    image: str | None = None
    max_run: int | None = None
    wait: bool = True
    dry_run: bool = False
    job_name: str | None = None
    region: str | None = None
    source: str = "source"
    requirements: tuple[str, ...] = ()
    environment: tuple[tuple[str, str], ...] = ()
    tags: tuple[tuple[str, str], ...] = ()
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
    :param study: the tuning study (``tune``): the options of ``bestiary tune`` as a dict
        (``trials``, ``sampler``, ``pruner``, ``n_jobs``, ``sampler_seed``, ``space``, ``direction``,
        ``objective_metrics``, ...), which the launcher turns into its own search; or a value of
        the launcher's own study type.
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
    #: Values of its own settings the conformance kit plans a job with (a role, a bucket).
    sample_settings: ClassVar[dict[str, Any]] = {}

    def settings(self, job: Job) -> dict[str, Any]:
        """This launcher's own settings for ``job``: the run config's options table named after the
        launcher (``[options.<name>]``, filled by the options its plugin declares), overridden by
        ``job.options.extra`` (``--launch-option``, a command job's options)."""
        table = job.config.options.get(self.name, {}) if job.config is not None else {}
        return {**table, **job.options.extra}

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
            hint = ("; they are for launchers that rent machines (see `bestiary list launchers`)"
                    if set(unknown) & REMOTE_OPTIONS and self.name == "local" else "")
            raise ConfigError(f"launcher {self.name!r} does not use {flags}{hint}; drop them "
                              "(see `bestiary info launchers:NAME`)")
        foreign = sorted(_launcher_tables(job) - {self.name})
        if foreign:
            names = ", ".join(f"{t}.{k}" for t in foreign for k in job.config.options[t])
            raise ConfigError(f"launcher {self.name!r} does not use the options {names}; they are for --launcher "
                              f"{foreign[0]}; drop them")

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


def _launcher_tables(job: Job) -> set[str]:
    """The job config's options tables that belong to launchers (named after one)."""
    tables = set(job.config.options) if job.config is not None and getattr(job.config, "options", None) else set()
    if not tables:
        return set()
    from ..api import list_entries

    return tables & {e.name for e in list_entries("launchers")}


def parse_duration(text: str | int | None, flag: str) -> int | None:
    """Seconds in ``90``, ``45m``, ``2h`` or ``1.5d``; ``None`` stays ``None``.

    :param flag: the option, named in the error.
    """
    if text is None:
        return None
    match = _DURATION.match(str(text))
    if not match:
        raise ConfigError(f"{flag} expects a duration such as 3600, 45m, 2h or 1d, got {text!r}")
    return int(float(match.group(1)) * _UNITS[match.group(2)])


def parse_pairs(items: tuple[str, ...] | list[str], flag: str,
                default_key: str | None = None) -> tuple[tuple[str, str], ...]:
    """``KEY=VALUE`` strings as pairs; each key once.

    :param default_key: the key of an item without one (a bare URI, possibly holding ``=``).
    """
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


__all__ = ["LOCAL_OPTIONS", "REMOTE_OPTIONS", "Job", "LaunchOptions", "LaunchResult", "Launcher", "get_launcher",
           "parse_duration", "parse_pairs"]
