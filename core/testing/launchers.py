"""The conformance check of launchers: the class contract and a dry run of a small job."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from ..errors import ConfigError
from ..registry import Entry
from ._support import Overrides, config, resolve, step
from .report import ConformanceError, Report

#: Settings a remote launcher needs to plan a job; each launcher gets the ones it ``accepts``, and
#: its own ``sample_settings`` (an IAM role, a bucket) as :attr:`LaunchOptions.extra`.
PLAN_OPTIONS: dict[str, Any] = {
    "instance_type": "ml.m5.xlarge",
    "image": "111122223333.dkr.ecr.us-east-1.amazonaws.com/bestiary:conformance", "region": "us-east-1",
    "max_run": 600,
}


def _toy_config() -> Any:
    """A config naming a registered architecture and a dataset of the same task."""
    from ..api import list_entries
    from ..engine.config import RunConfig

    datasets = list_entries("datasets")
    for arch in list_entries("architectures"):
        for data in datasets:
            if arch.task is not None and data.task == arch.task:
                return RunConfig(arch=arch.qualified_name, dataset=data.qualified_name, max_steps=1)
    return None


def check_launcher(entry: Entry | str, /, *, overrides: Overrides | None = None) -> Report:
    """Check that a launcher builds as a :class:`bestiary.launch.Launcher` named like its entry,
    declares only known options, refuses others with a :class:`ConfigError`, and dry-runs a
    one-step job to a JSON request with an ``estimated_cost_usd``, starting nothing."""
    from ..launch import Job, Launcher, LaunchOptions

    entry = resolve("launchers", entry)
    cfg = config(entry, overrides)
    report = Report(entry)
    if cfg.skip:
        report.skipped = str(cfg.skip)
        return report
    with step(entry, "build"):
        launcher = entry.build(**cfg.build)
    if not isinstance(launcher, Launcher):
        raise ConformanceError(entry, "build", f"built a {type(launcher).__name__}",
                               "subclass bestiary.launch.Launcher")
    if launcher.name != entry.name:
        raise ConformanceError(entry, "build", f"its name attribute is {launcher.name!r}",
                               f"set name = {entry.name!r}, the name it is registered under")
    report.passed.append("build")
    known = {f.name for f in dataclasses.fields(LaunchOptions)}
    unknown = sorted(set(launcher.accepts) - known)
    if unknown or not launcher.kinds:
        raise ConformanceError(entry, "declarations", f"accepts unknown options {unknown}" if unknown
                               else "declares no job kinds", f"options are the fields of LaunchOptions: {sorted(known)}")
    report.passed.append("declarations")
    refused = sorted(known - set(launcher.accepts) - {"dry_run", "extra"})
    if refused:
        field_name = refused[0]
        default = getattr(LaunchOptions(), field_name)
        value: Any = {int: 7, bool: not default, str: "x", tuple: (("a", "b"),)}.get(type(default), "x")
        with step(entry, "refuses unknown options"):
            try:
                launcher.check(Job(min(launcher.kinds), LaunchOptions(**{field_name: value})))
            except ConfigError:
                pass
            else:
                raise AssertionError(f"accepted --{field_name.replace('_', '-')}, which it does not declare")
        report.passed.append("refuses unknown options")
    toy = _toy_config()
    if toy is None or "train" not in launcher.kinds:
        report.skipped = "no architecture and dataset of one task registered to plan a run with"
        return report
    extra = dict(launcher.sample_settings) if "extra" in launcher.accepts else {}
    options = LaunchOptions(**{k: v for k, v in PLAN_OPTIONS.items() if k in launcher.accepts}, dry_run=True,
                            extra=extra)
    with step(entry, "dry run"):
        plan = launcher.plan(Job("train", options, config=toy))
        json.dumps(plan)
    if not isinstance(plan, dict) or "estimated_cost_usd" not in plan:
        raise ConformanceError(entry, "dry run", "the plan has no 'estimated_cost_usd'",
                               "return the request as a dict with the cost estimate (0 for free launchers)")
    report.passed.append("dry run")
    return report
