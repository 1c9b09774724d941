"""The public plugin API: everything a plugin needs from bestiary, in one module.

A plugin imports ``bestiary`` and ``bestiary.extend``, nothing else of bestiary; the built-in
plugins do the same (a test holds them to it). The names below are the promise to third parties:
they keep their meaning across releases, and everything else of bestiary may change. The table in
docs/plugins.md ("The public API") says what each name is.

Importing this module is cheap: each name is imported on first use (PEP 562 ``__getattr__``), so
``from bestiary.extend import hookimpl, Register, ConfigError`` imports neither torch nor click.
The names that need torch (``Task``, ``Data``, ``Metric``, ``Strategy``, the checkpoint helpers,
...) import it when accessed, and the command-line helpers (``launch_options``, ``submit``, ...)
import click. Type checkers and IDEs see the real types through the ``TYPE_CHECKING`` imports.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

#: Public name -> (module under ``bestiary``, attribute there).
_EXPORTS: dict[str, tuple[str, str]] = {
    # registration and hooks
    "__version__": ("._version", "__version__"),
    "hookimpl": (".hookspecs", "hookimpl"),
    "hookspec": (".hookspecs", "hookspec"),
    "Register": (".host", "Register"),
    "PluginHost": (".host", "PluginHost"),
    "Entry": (".registry", "Entry"),
    "Provenance": (".registry", "Provenance"),
    "get_entry": (".api", "get_entry"),
    "list_entries": (".api", "list_entries"),
    "build": (".api", "build"),
    # errors
    "ConfigError": (".errors", "ConfigError"),
    "TaskMismatchError": (".errors", "TaskMismatchError"),
    "CheckpointError": (".errors", "CheckpointError"),
    "UserError": (".errors", "UserError"),
    "DataError": (".errors", "DataError"),
    "ModelFileError": (".errors", "ModelFileError"),
    "MissingDependencyError": (".errors", "MissingDependencyError"),
    "StorageError": (".errors", "StorageError"),
    "RegistryError": (".registry", "RegistryError"),
    "LookupFailure": (".registry", "LookupFailure"),
    "UnknownEntryError": (".registry", "UnknownEntryError"),
    "AmbiguousEntryError": (".registry", "AmbiguousEntryError"),
    "UnknownKindError": (".registry", "UnknownKindError"),
    "InvalidEntryError": (".registry", "InvalidEntryError"),
    "DuplicateEntryError": (".registry", "DuplicateEntryError"),
    # plugin options
    "OptionSpec": (".options", "OptionSpec"),
    "AddOption": (".options", "AddOption"),
    "option_value": (".options", "option_value"),
    "complete_options": (".options", "complete_options"),
    # policies
    "metric_direction": (".registry.direction", "metric_direction"),
    "SearchSpace": (".registry.space", "SearchSpace"),
    "space_of": (".tune.space", "space_of"),
    # tasks, data, metrics, strategies (torch)
    "Task": (".engine.tasks", "Task"),
    "split_samples": (".engine.tasks", "split_samples"),
    "sample_bounds": (".engine.tasks", "sample_bounds"),
    "Data": (".engine.data", "Data"),
    "make_loader": (".engine.data", "make_loader"),
    "batches_per_epoch": (".engine.data", "batches_per_epoch"),
    "Metric": (".engine.metrics", "Metric"),
    "Strategy": (".engine.strategy", "Strategy"),
    "resolve_device": (".engine.strategy", "resolve_device"),
    "Topology": (".engine.topology", "Topology"),
    # runs
    "RunConfig": (".engine.config", "RunConfig"),
    "RunContext": (".engine.run", "RunContext"),
    "TrainState": (".engine.state", "TrainState"),
    "start_run": (".engine.start", "start_run"),
    "RESUME_FLAG": (".engine.interrupt", "RESUME_FLAG"),
    "interrupted_exit_code": (".engine.interrupt", "interrupted_exit_code"),
    "to_toml": (".engine.torchrun", "to_toml"),
    "TorchrunLaunch": (".engine.torchrun", "Launch"),
    "launch_torchrun": (".engine.torchrun", "launch_run"),
    # checkpoints (torch)
    "save_checkpoint": (".engine.checkpoint", "save"),
    "load_checkpoint": (".engine.checkpoint", "load"),
    "commit_checkpoint": (".engine.checkpoint", "commit"),
    "verify_checkpoint": (".engine.checkpoint", "verify"),
    "flatten_state": (".engine.checkpoint", "flatten_state"),
    "unflatten_state": (".engine.checkpoint", "unflatten_state"),
    # launchers and jobs
    "Launcher": (".launch", "Launcher"),
    "Job": (".launch", "Job"),
    "LaunchOptions": (".launch", "LaunchOptions"),
    "LaunchResult": (".launch", "LaunchResult"),
    "LOCAL_OPTIONS": (".launch", "LOCAL_OPTIONS"),
    "REMOTE_OPTIONS": (".launch", "REMOTE_OPTIONS"),
    "parse_duration": (".launch", "parse_duration"),
    "parse_pairs": (".launch", "parse_pairs"),
    "get_launcher": (".launch", "get_launcher"),
    "record_job": (".launch.record", "record_job"),
    "recorded_jobs": (".launch.record", "recorded_jobs"),
    "find_job": (".launch.record", "find_job"),
    # debugger rules
    "Rule": (".debug", "Rule"),
    "Finding": (".debug", "Finding"),
    "select_rules": (".debug", "select_rules"),
    "fmt": (".debug.findings", "fmt"),
    "names": (".debug.findings", "names"),
    "class_counts": (".debug.labels", "class_counts"),
    "RuleRunner": (".debug.runner", "RuleRunner"),
    "render_debug_report": (".debug.report", "render"),
    "debug_summary_line": (".debug.report", "summary_line"),
    "FINDINGS_FILE": (".debug.report", "FINDINGS"),
    "DEBUG_STATS_FILE": (".debug.report", "STATS"),
    "DEBUG_INFO_FILE": (".debug.report", "INFO"),
    "DEBUG_REPORT_FILE": (".debug.report", "REPORT"),
    # benchmark suites
    "Suite": (".benchmarks.suite", "Suite"),
    "load_suite": (".benchmarks.suite", "load_suite"),
    # command-line helpers for plugins that add commands (click)
    "launch_options": (".cli.launch", "launch_options"),
    "remote_options": (".cli.launch", "remote_options"),
    "pop_launch_options": (".cli.launch", "pop_launch_options"),
    "submit": (".cli.submit", "submit"),
    "console": (".cli", "console"),
    "NameProblem": (".cli", "NameProblem"),
    "command_names": (".cli.helpers", "command_names"),
    "run_cli": (".cli.helpers", "run_cli"),
}

__all__ = [  # the keys of _EXPORTS, written out so that tools see the re-exports
    "DEBUG_INFO_FILE",
    "DEBUG_REPORT_FILE",
    "DEBUG_STATS_FILE",
    "FINDINGS_FILE",
    "LOCAL_OPTIONS",
    "REMOTE_OPTIONS",
    "RESUME_FLAG",
    "AddOption",
    "AmbiguousEntryError",
    "CheckpointError",
    "ConfigError",
    "Data",
    "DataError",
    "DuplicateEntryError",
    "Entry",
    "Finding",
    "InvalidEntryError",
    "Job",
    "LaunchOptions",
    "LaunchResult",
    "Launcher",
    "LookupFailure",
    "Metric",
    "MissingDependencyError",
    "ModelFileError",
    "NameProblem",
    "OptionSpec",
    "PluginHost",
    "Provenance",
    "Register",
    "RegistryError",
    "Rule",
    "RuleRunner",
    "RunConfig",
    "RunContext",
    "SearchSpace",
    "StorageError",
    "Strategy",
    "Suite",
    "Task",
    "TaskMismatchError",
    "Topology",
    "TorchrunLaunch",
    "TrainState",
    "UnknownEntryError",
    "UnknownKindError",
    "UserError",
    "__version__",
    "batches_per_epoch",
    "build",
    "class_counts",
    "command_names",
    "commit_checkpoint",
    "complete_options",
    "console",
    "debug_summary_line",
    "find_job",
    "flatten_state",
    "fmt",
    "get_entry",
    "get_launcher",
    "hookimpl",
    "hookspec",
    "interrupted_exit_code",
    "launch_options",
    "launch_torchrun",
    "list_entries",
    "load_checkpoint",
    "load_suite",
    "make_loader",
    "metric_direction",
    "names",
    "option_value",
    "parse_duration",
    "parse_pairs",
    "pop_launch_options",
    "record_job",
    "recorded_jobs",
    "remote_options",
    "render_debug_report",
    "resolve_device",
    "run_cli",
    "sample_bounds",
    "save_checkpoint",
    "select_rules",
    "space_of",
    "split_samples",
    "start_run",
    "submit",
    "to_toml",
    "unflatten_state",
    "verify_checkpoint",
]


def __getattr__(name: str) -> Any:
    try:
        module, attr = _EXPORTS[name]
    except KeyError:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}; the public API is listed in "
                             "bestiary.extend.__all__ (docs/plugins.md, 'The public API')") from None
    # "bestiary.benchmarks" is a sibling tree mapped under the bestiary package: resolve from "bestiary".
    value = getattr(importlib.import_module(module, "bestiary"), attr)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS})


if TYPE_CHECKING:
    from ._version import __version__
    from .api import build, get_entry, list_entries
    from .benchmarks.suite import Suite, load_suite
    from .cli import NameProblem, console
    from .cli.helpers import command_names, run_cli
    from .cli.launch import launch_options, pop_launch_options, remote_options
    from .cli.submit import submit
    from .debug import Finding, Rule, select_rules
    from .debug.findings import fmt, names
    from .debug.labels import class_counts
    from .debug.report import FINDINGS as FINDINGS_FILE
    from .debug.report import INFO as DEBUG_INFO_FILE
    from .debug.report import REPORT as DEBUG_REPORT_FILE
    from .debug.report import STATS as DEBUG_STATS_FILE
    from .debug.report import render as render_debug_report
    from .debug.report import summary_line as debug_summary_line
    from .debug.runner import RuleRunner
    from .engine.checkpoint import commit as commit_checkpoint
    from .engine.checkpoint import flatten_state, unflatten_state
    from .engine.checkpoint import load as load_checkpoint
    from .engine.checkpoint import save as save_checkpoint
    from .engine.checkpoint import verify as verify_checkpoint
    from .engine.config import RunConfig
    from .engine.data import Data, batches_per_epoch, make_loader
    from .engine.interrupt import RESUME_FLAG, interrupted_exit_code
    from .engine.metrics import Metric
    from .engine.run import RunContext
    from .engine.start import start_run
    from .engine.state import TrainState
    from .engine.strategy import Strategy, resolve_device
    from .engine.tasks import Task, sample_bounds, split_samples
    from .engine.topology import Topology
    from .engine.torchrun import Launch as TorchrunLaunch
    from .engine.torchrun import launch_run as launch_torchrun
    from .engine.torchrun import to_toml
    from .errors import (
        CheckpointError,
        ConfigError,
        DataError,
        MissingDependencyError,
        ModelFileError,
        StorageError,
        TaskMismatchError,
        UserError,
    )
    from .hookspecs import hookimpl, hookspec
    from .host import PluginHost, Register
    from .launch import (
        LOCAL_OPTIONS,
        REMOTE_OPTIONS,
        Job,
        Launcher,
        LaunchOptions,
        LaunchResult,
        get_launcher,
        parse_duration,
        parse_pairs,
    )
    from .launch.record import find_job, record_job, recorded_jobs
    from .options import AddOption, OptionSpec, complete_options, option_value
    from .registry import (
        AmbiguousEntryError,
        DuplicateEntryError,
        Entry,
        InvalidEntryError,
        LookupFailure,
        Provenance,
        RegistryError,
        UnknownEntryError,
        UnknownKindError,
    )
    from .registry.direction import metric_direction
    from .registry.space import SearchSpace
    from .tune.space import space_of
