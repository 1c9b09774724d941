"""``bestiary tune``: an optuna study of one architecture on one dataset, one run per trial."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from typing import Any

import click

from ..engine.interrupt import EXIT_SIGINT
from .launch import pop_launch_options, remote_options
from .options import build_config, run_options

#: Where trials run: name -> function(arch, options) -> result. Another launcher (a cloud tuning
#: job) adds itself here and gets the same options.
LAUNCHERS: dict[str, Callable[[str, dict[str, Any]], dict[str, Any]]] = {}


def _local(arch: str, options: dict[str, Any]) -> dict[str, Any]:
    """Trials in this process (``--n-jobs`` at once), results written by bestiary.tune.report."""
    # optuna and torch load only when a study runs
    from ..tune import tune
    from ..tune.budget import parse_duration

    study = {k: options.pop(k) for k in ("trials", "sampler", "pruner", "storage", "study", "space", "n_jobs", "out",
                                         "sampler_seed", "direction")}
    timeout = options.pop("timeout")
    plots = options.pop("plots")
    objectives = list(options.pop("metrics", ()) or ())
    if options.get("quiet") is None:
        options["quiet"] = True  # many short runs: one line per trial instead of progress bars
    config = build_config(arch, options)
    return tune(config.arch, config=config, metric=objectives or None, direction=list(study.pop("direction")) or None,
                timeout=parse_duration(timeout) if timeout else None, plots=plots, echo=_stderr, **study)


def _stderr(line: str) -> None:
    click.echo(line, err=True)


LAUNCHERS["local"] = _local


def tune_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """The study options of ``bestiary tune``, for commands that tune the same way."""
    from ..tune.study import PRUNERS, SAMPLERS

    opts = [
        click.option("--trials", type=click.IntRange(min=1), default=20, show_default=True,
                     help="Finished (complete or pruned) trials the study should hold; a rerun continues."),
        click.option("--timeout", metavar="DURATION", help="Start no trial after this long (90, 45s, 10m, 1h30m)."),
        click.option("--direction", multiple=True, type=click.Choice(["max", "min"]),
                     help="Direction of --metric (one, or one per --metric); default from the metric."),
        click.option("--sampler", type=click.Choice(SAMPLERS), default="tpe", show_default=True),
        click.option("--pruner", type=click.Choice(PRUNERS), default=None,
                     help="Stop weak trials after a validation [default: median; none with several metrics]."),
        click.option("--storage", metavar="URL|FILE", help="optuna storage: sqlite:///tune.db, another database URL, "
                     "or a journal file (default: RUNS_ROOT/studies/STUDY.journal)."),
        click.option("--study", metavar="NAME", help="Study name [default: ARCH-DATASET]."),
        click.option("--space", type=click.Path(exists=True, dir_okay=False),
                     help="TOML search space replacing the architecture's (inherit = true extends it)."),
        click.option("--n-jobs", type=click.IntRange(min=1), default=1, show_default=True, help="Trials at once in this process."),
        click.option("--out", type=click.Path(file_okay=False), help="Results folder [default: RUNS_ROOT/studies/STUDY]."),
        click.option("--sampler-seed", type=int, help="Seed the sampler (default: unseeded, so parallel tuners differ)."),
        click.option("--plots/--no-plots", default=True, show_default=True, help="Write optuna's plots as PNG files."),
    ]
    for opt in reversed(opts):
        func = opt(func)
    return func


@click.command("tune")
@click.argument("arch")
@click.option("--launcher", default="local", show_default=True,
              help="Where trials run: local, or a launcher that runs the whole search (sagemaker: a SageMaker "
                   "tuning job, see docs/sagemaker.md).")
@click.option("--json", "as_json", is_flag=True, help="Print the results as JSON.")
@remote_options
@tune_options
@run_options
def tune_command(arch: str, launcher: str, as_json: bool, **options: Any) -> None:
    """Tune ARCH on --dataset: an optuna study whose every trial is one `bestiary train` run.

    Every `bestiary train` option holds for all trials unless the search space varies it. The
    objective is --metric (repeatable; latency_ms is the model's inference latency on this device);
    default: the task's monitored metric. Running the same command again continues the study.

    \b
    bestiary tune resnet18 --dataset digits --trials 20 --epochs 3
    bestiary tune resnet18 --dataset digits --metric accuracy --metric latency_ms --pruner none
    bestiary tune resnet18 --dataset digits --storage sqlite:///tune.db --space space.toml
    """
    if not options.get("dataset") and not options.get("config_file"):
        raise click.UsageError("pass --dataset NAME (see `bestiary list datasets`)")
    if launcher not in LAUNCHERS:  # a launcher entry that runs the whole search itself
        sys.exit(remote_tune(arch, launcher, as_json, options))
    refuse_remote_options(options)
    result = LAUNCHERS[launcher](arch, options)
    if as_json:
        click.echo(json.dumps(result, indent=2, default=str))
    else:
        print_result(result)
    if result.get("interrupted"):
        click.echo("interrupted; run the same command again to continue the study", err=True)
        sys.exit(EXIT_SIGINT)


#: Options of local studies that a remote search has no use for, and their defaults.
_LOCAL_ONLY = {"storage": None, "out": None, "timeout": None, "study": None}
_STUDY_KEYS = ("trials", "sampler", "pruner", "n_jobs", "sampler_seed", "space", "direction", "plots",
               "objective_metrics", *_LOCAL_ONLY)


def refuse_remote_options(options: dict[str, Any]) -> None:
    """Take the remote launch options out of a local study's options, refusing any that was given
    (a launcher's own options too: they would ride along in every trial's config)."""
    from ..api import list_entries

    _, launch = pop_launch_options(options)
    launchers = {e.name for e in list_entries("launchers")}
    own = sorted(k.split("__")[2] for k, v in options.items()
                 if k.startswith("opt__") and k.split("__")[1] in launchers and v not in (None, ()))
    given = sorted(launch.changed()) + own
    if given or launch.dry_run:
        flags = ", ".join("--" + n.replace("_", "-") for n in given) or "--dry-run"
        raise click.UsageError(f"{flags} apply to remote launchers; add --launcher NAME (see `bestiary list "
                               "launchers`) or drop them")


def remote_tune(arch: str, launcher_name: str, as_json: bool, options: dict[str, Any]) -> int:
    """Dry-run or start the search of ``bestiary tune ARCH ... --launcher NAME`` on a launcher that
    runs the whole search itself; the exit status. The launcher receives the tune options as the
    job's study (a dict) and turns them into its own search."""
    from ..launch import Job, get_launcher
    from .submit import submit

    _, launch = pop_launch_options(options)
    options["objective_metrics"] = options.pop("metrics", ())  # --metric names the objective in `tune`
    study = {k: options.pop(k) for k in _STUDY_KEYS if k in options}
    config = build_config(arch, options)
    return submit(get_launcher(launcher_name), Job("tune", launch, config=config, study=study), as_json)


def print_result(result: dict[str, Any]) -> None:
    """A leaderboard table, the best trial (or Pareto front) and the files written."""
    from rich.table import Table

    from . import console

    rows = result["leaderboard"]
    names = result["objectives"]
    states: dict[str, int] = {}
    for row in rows:
        states[row["state"]] = states.get(row["state"], 0) + 1
    out = console()
    out.print(f"study {result['study']} ({result['storage']}): "
              + ", ".join(f"{n} {s}" for s, n in sorted(states.items())))
    params = sorted({k for row in rows for k in row if k.startswith("param:")})
    table = Table("trial", "state", *names, *(p[6:] for p in params), "time s", "run")
    for row in rows[:20]:
        table.add_row(str(row["trial"]), row["state"], *(_fmt(row.get(n)) for n in names),
                      *(_fmt(row.get(p)) for p in params), _fmt(row.get("wall_time_s")), str(row.get("run_dir", "")))
    out.print(table)
    best = result["best"]
    if best is None:
        out.print("no trial completed")
    else:
        values = ", ".join(f"{k} {_fmt(v)}" for k, v in best["values"].items())
        out.print(f"best: trial {best['trial']}: {values}; {json.dumps(best['params'])}")
        out.print(f"best run: {best['run_dir']}")
    if result.get("pareto_front"):
        out.print("Pareto front: " + "; ".join(
            f"trial {t['trial']} (" + ", ".join(f"{k} {_fmt(v)}" for k, v in t["values"].items()) + ")"
            for t in result["pareto_front"]))
    for name, values in result.get("importances", {}).items():
        if values and "unavailable" not in values:
            out.print(f"importances ({name}): " + ", ".join(f"{k} {v:.2f}" for k, v in values.items()))
    for failure in result.get("failures", []):
        out.print(f"[yellow]{failure}[/yellow]")
    files = result.get("files", {})
    out.print(f"results: {result['out']}" + (f"; best model: {files['best_model']}" if "best_model" in files else ""))


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "" if value is None else str(value)


for _param in tune_command.params:  # the train option --metric names the objective(s) here
    if _param.name == "metrics":
        _param.help = ("Objective metric (repeatable for several objectives; latency_ms = inference latency "
                       "on this device); also reported by every run. Default: the task's monitored metric.")
