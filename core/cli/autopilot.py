"""``bestiary autopilot``: choose and tune architectures for a dataset within a time budget."""

from __future__ import annotations

import json
import sys
from typing import Any

import click

from ..engine.interrupt import EXIT_SIGINT


@click.command("autopilot")
@click.option("--dataset", required=True, help="Dataset name (see `bestiary list datasets`).")
@click.option("--task", default="auto", show_default=True, help="Task of the candidates; auto: the dataset's.")
@click.option("--time-budget", default="10m", show_default=True, metavar="DURATION",
              help="Whole budget: 90, 45s, 5m, 1h30m.")
@click.option("--metric", help="Validation metric to optimise [default: the task's monitored metric].")
@click.option("--out", type=click.Path(file_okay=False), help="Results folder [default: RUNS_ROOT/autopilot/DATASET].")
@click.option("--include", multiple=True, metavar="PATTERN", help="Consider only these architectures (repeatable, e.g. 'resnet*').")
@click.option("--exclude", multiple=True, metavar="PATTERN", help="Leave these architectures out (repeatable).")
@click.option("--max-candidates", type=click.IntRange(min=1), default=5, show_default=True,
              help="Consider the cheapest this many architectures.")
@click.option("--max-epochs", type=click.IntRange(min=1), default=9, show_default=True,
              help="Epochs of a trial no rung stops (rungs at 1, 3, 9, ... epochs).")
@click.option("--study", metavar="NAME", help="Study name [default: autopilot-DATASET]; the same command continues it.")
@click.option("--storage", metavar="URL|FILE", help="optuna storage [default: a journal file in --out].")
@click.option("--n-jobs", type=click.IntRange(min=1), default=1, show_default=True, help="Trials at once.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the runs and the sampler.")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N.")
@click.option("--runs-root", default="runs", show_default=True, help="Folder of the trials' run directories.")
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE", help="Any run-config field for every trial (repeatable).")
@click.option("--json", "as_json", is_flag=True, help="Print the results as JSON.")
def autopilot_command(dataset: str, task: str, time_budget: str, metric: str | None, out: str | None,
                      include: tuple[str, ...], exclude: tuple[str, ...], max_candidates: int, max_epochs: int,
                      study: str | None, storage: str | None, n_jobs: int, seed: int, device: str, runs_root: str,
                      sets: tuple[str, ...], as_json: bool, **plugin_options: Any) -> None:
    """Pick architectures of the dataset's task from every installed plugin, spread --time-budget
    over them and their hyperparameters with successive halving, and write a leaderboard, the best
    model and a config file per candidate.

    \b
    bestiary autopilot --dataset digits --time-budget 5m
    bestiary autopilot --dataset digits --include 'resnet*' --time-budget 20m --out automl
    """
    # optuna and torch load only when the search runs
    from ..engine.config import apply_set
    from ..options import complete_options, declared_options
    from ..tune.autopilot import BudgetTooSmall, run_autopilot
    from .options import plugin_sets

    fields: dict[str, Any] = {"seed": seed, "device": device, "runs_root": runs_root}
    specs = declared_options()
    for item in plugin_sets(list(sets), {s.table for s in specs}):
        apply_set(fields, item)
    given = fields.pop("options", {})
    for spec in specs:  # options that plugins declare for autopilot (hook add_options)
        value = plugin_options.pop(spec.param, None)
        if value not in (None, ()):
            given.setdefault(spec.table, {})[spec.name] = list(value) if isinstance(value, tuple) else value
    options = complete_options(given, specs)
    if options:
        fields["options"] = options
    try:
        result = run_autopilot(dataset, task=task, time_budget=time_budget, metric=metric, out=out,
                               include=list(include), exclude=list(exclude), max_candidates=max_candidates,
                               max_epochs=max_epochs, study=study, storage=storage, sampler_seed=seed, n_jobs=n_jobs,
                               echo=_stderr, **fields)
    except BudgetTooSmall as exc:  # no model: never exit 0 as if the search had succeeded
        if as_json:
            click.echo(json.dumps({**exc.result, "error": str(exc), "needed_s": exc.needed_s}, indent=2, default=str))
        raise click.ClickException(str(exc)) from None
    if as_json:
        click.echo(json.dumps(result, indent=2, default=str))
    else:
        _print(result)
    if result.get("interrupted"):
        click.echo("interrupted; run the same command again to continue", err=True)
        sys.exit(EXIT_SIGINT)


def _stderr(line: str) -> None:
    click.echo(line, err=True)


def _print(result: dict[str, Any]) -> None:
    from rich.table import Table

    from . import console
    from .tune import _fmt

    metric = result["metric"]
    out = console()
    table = Table("arch", f"{metric} (validation)", f"{metric} (test)", "train s", "params", "latency ms", "trials",
                  "config")
    for row in result["leaderboard"]:
        trials = f"{row['complete']} done, {row['pruned']} stopped" + (f", {row['failed']} failed" if row["failed"] else "")
        table.add_row(row["arch"], _fmt(row.get(metric)), _fmt(row.get(f"test_{metric}")), _fmt(row.get("train_time_s")),
                      _fmt(row.get("params")), _fmt(row.get("latency_ms")), trials, row.get("config", ""))
    out.print(f"{result['task']}: {len(result['leaderboard'])} candidates in {result['elapsed_s']:.0f} s")
    out.print(table)
    best = result["best"]
    if best is not None:  # run_autopilot raises BudgetTooSmall when no candidate completed
        out.print(f"best: {best['arch']} ({metric} {_fmt(best.get(metric))}, test {_fmt(best.get(f'test_{metric}'))}); "
                  f"model: {result['files']['best_model']}")
    for failure in result.get("failures", []):
        out.print(f"[yellow]{failure}[/yellow]")
    out.print(f"leaderboard: {result['files']['leaderboard']}")
