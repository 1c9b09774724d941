"""``bestiary jobs`` (added by the sagemaker plugin's ``add_commands``): the remote jobs this user
started (``list``), ``show``, ``logs`` and ``stop`` for one of them through the launcher that
started it, and ``submit`` to run any bestiary command as a job."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import click

from bestiary.extend import (
    Job,
    NameProblem,
    command_names,
    console,
    find_job,
    get_launcher,
    pop_launch_options,
    recorded_jobs,
    remote_options,
    submit,
)

from .options import click_options, pop_settings


def _target(name: str, launcher: str | None, region: str | None) -> tuple[Any, str | None]:
    """The launcher of job ``name`` and its region: from the record, or from the options."""
    if launcher is None:
        try:
            entry = find_job(name)
        except KeyError as exc:
            raise NameProblem(str(exc.args[0])) from exc
        launcher, region = entry["launcher"], region or entry.get("region")
    return get_launcher(launcher), region


def _job_options(func: Any) -> Any:
    func = click.option("--region", help="The job's region (default: the recorded one).")(func)
    func = click.option("--launcher", help="The launcher that started it, for jobs started elsewhere (e.g. sagemaker).")(func)
    return click.argument("name")(func)


@click.group("jobs")
def jobs_group() -> None:
    """Jobs started with --launcher (SageMaker training and tuning jobs).

    \b
    bestiary jobs list
    bestiary jobs show bestiary-resnet18-digits-20261126101500
    bestiary jobs logs NAME --lines 50
    bestiary jobs stop NAME
    bestiary jobs submit --instance-type ml.g5.xlarge --role ARN -- bench run throughput-gpu
    """


@jobs_group.command("list")
@click.option("--status", "with_status", is_flag=True, help="Ask each launcher for the current status (one call per job).")
@click.option("--remote", metavar="LAUNCHER", help="List the launcher's own jobs named bestiary-*, from any machine.")
@click.option("--region", help="Region for --remote.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def list_command(with_status: bool, remote: str | None, region: str | None, as_json: bool) -> None:
    """Jobs started from this machine, newest first."""
    if remote:
        launcher = get_launcher(remote)
        lister = getattr(launcher, "list_remote", None)
        if lister is None:
            raise click.ClickException(f"launcher {launcher.name!r} cannot list its jobs")
        jobs = lister(region=region)
    else:
        jobs = recorded_jobs()
        if with_status:
            for job in jobs:
                launcher, job_region = _target(job["name"], job["launcher"], job.get("region"))
                try:
                    job["status"] = launcher.describe(job["name"], region=job_region).get("status")
                except Exception as exc:  # noqa: BLE001  # one unreachable job must not hide the others
                    job["status"] = f"unknown ({type(exc).__name__})"
    if as_json:
        click.echo(json.dumps(jobs, indent=2, default=str))
        return
    if not jobs:
        click.echo("no jobs recorded; start one with `bestiary train ... --launcher sagemaker`")
        return
    from rich.table import Table

    table = Table("name", "launcher", "kind", "region", "created", "status")
    for job in jobs:
        created = job.get("created")
        when = (dt.datetime.fromtimestamp(created).strftime("%Y-%m-%d %H:%M") if isinstance(created, (int, float))
                else str(created or "-"))
        table.add_row(job["name"], job.get("launcher", "-"), job.get("kind", "-"), job.get("region") or "-", when,
                      str(job.get("status", "-")))
    console().print(table)


@jobs_group.command("show")
@_job_options
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def show_command(name: str, launcher: str | None, region: str | None, as_json: bool) -> None:
    """Status and facts of job NAME (instances, spot, times, model location, metrics)."""
    target, job_region = _target(name, launcher, region)
    facts = target.describe(name, region=job_region)
    if as_json:
        click.echo(json.dumps(facts, indent=2, default=str))
        return
    for key, value in facts.items():
        click.echo(f"{key:<18} {json.dumps(value, default=str) if isinstance(value, (dict, list)) else value}")


@jobs_group.command("logs")
@_job_options
@click.option("--lines", type=click.IntRange(min=1), default=200, show_default=True, help="Last lines to show.")
def logs_command(name: str, launcher: str | None, region: str | None, lines: int) -> None:
    """The last log lines of job NAME (every instance's)."""
    target, job_region = _target(name, launcher, region)
    for line in target.logs(name, region=job_region, limit=lines):
        click.echo(line)


@jobs_group.command("stop")
@_job_options
def stop_command(name: str, launcher: str | None, region: str | None) -> None:
    """Stop job NAME: its processes get SIGTERM and save a checkpoint first."""
    target, job_region = _target(name, launcher, region)
    target.stop(name, region=job_region)
    click.echo(f"asked {name} to stop; follow it with `bestiary jobs show {name}`")


@jobs_group.command("submit", context_settings={"allow_interspersed_args": False})
@click.option("--launcher", default="sagemaker", show_default=True, help="Where the job runs.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@remote_options
@click_options
@click.argument("argv", nargs=-1, type=click.UNPROCESSED, required=True)
def submit_command(launcher: str, as_json: bool, argv: tuple[str, ...], **options: Any) -> None:
    """Run any bestiary command as a remote job, for example a benchmark suite.

    The command runs in a folder of the checkpoint location, so a restarted job finds what it had
    written, and that folder becomes the job's output.

    \b
    bestiary jobs submit --instance-type ml.g5.xlarge --role ARN --dry-run -- bench run throughput-gpu
    """
    import dataclasses
    import sys

    known = command_names()
    if argv[0] not in known:
        import difflib

        close = difflib.get_close_matches(argv[0], known, n=3)
        hint = f" Did you mean: {', '.join(close)}?" if close else ""
        raise click.UsageError(f"{argv[0]!r} is not a bestiary command.{hint} Put the command after `--`.")
    settings = pop_settings(options)  # no run config to hold them: they go to the launcher directly
    _, launch = pop_launch_options(options)
    launch = dataclasses.replace(launch, extra={**settings, **launch.extra})
    sys.exit(submit(get_launcher(launcher), Job("command", launch, argv=tuple(argv)), as_json))
