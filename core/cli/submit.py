"""Submit a job to a launcher from the command line: dry runs, records and what to print."""

from __future__ import annotations

import json
from typing import Any

import click

from ..launch import Job, Launcher


def show_plan(plan: dict[str, Any], as_json: bool) -> None:
    """Print a dry run's request: JSON, or the JSON under a one-line cost summary."""
    if as_json:
        click.echo(json.dumps(plan, indent=2, default=str))
        return
    cost = plan.get("estimated_cost_usd")
    if isinstance(cost, dict):
        bound = f"at most {cost['max_usd']:.2f} USD" if cost.get("max_usd") is not None else "unknown cost"
        click.echo(f"dry run: nothing was started or uploaded; estimated cost {bound} ({cost['basis']}; "
                   f"{cost['source']})")
    else:
        click.echo("dry run: nothing was started")
    if plan.get("note"):  # what the launcher assumed to make the plan (a default region, ...)
        click.echo(f"note: {plan['note']}", err=True)
    click.echo(json.dumps({k: v for k, v in plan.items() if k not in ("estimated_cost_usd", "note")}, indent=2,
                          default=str))


def submit(launcher: Launcher, job: Job, as_json: bool = False) -> int:
    """Dry-run or launch ``job`` with ``launcher`` (remote launchers record their jobs for
    ``bestiary jobs``).

    :return: the exit status for the command.
    """
    if job.options.dry_run:
        show_plan(launcher.plan(job), as_json)
        return 0
    result = launcher.launch(job)
    if result.job_name:
        if as_json:
            click.echo(json.dumps({"job_name": result.job_name, "exit_code": result.exit_code, **result.details},
                                  indent=2, default=str))
        else:
            status = result.details.get("status", "submitted")
            click.echo(f"{job.kind} job {result.job_name} on {launcher.name}: {status}")
            click.echo(f"follow it with `bestiary jobs show {result.job_name}` and `bestiary jobs logs {result.job_name}`")
    return result.exit_code
