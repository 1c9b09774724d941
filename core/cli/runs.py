"""``bestiary runs``: list, show and compare runs from the runs index; rebuild the index."""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from ..engine.compare import RunNotFoundError, UnknownMetricError
from ..engine.index import RunsIndex
from . import NameProblem
from . import console as make_console

ENV_RUNS_ROOT = "BESTIARY_RUNS_ROOT"
#: Above this many rows a listing is printed as plain columns: rich takes seconds for thousands.
RICH_ROWS = 500


class RunProblem(NameProblem):
    """An unknown or ambiguous run, or a metric no run logged: exit 2 without the usage banner."""


def _root_option(f: Callable[..., Any]) -> Callable[..., Any]:
    return click.option(
        "--root",
        type=click.Path(file_okay=False, path_type=Path),
        default=None,
        help=f"Folder of the run directories (default: the group's --root, ${ENV_RUNS_ROOT} or ./runs).",
    )(f)


def _root(root: Path | None) -> Path:
    """This command's --root, else the group's (which defaults to ${ENV_RUNS_ROOT} or ./runs)."""
    if root is not None:
        return root
    group = click.get_current_context().find_object(_Root)
    return Path(group.path if group is not None else os.environ.get(ENV_RUNS_ROOT) or "runs")


def _index(root: Path | None) -> RunsIndex:
    """The index of the runs root, built when missing."""
    root = _root(root)
    index = RunsIndex(root)
    if not index.file.exists() and any(root.glob("*/config.json")):
        try:
            index.rebuild()  # runs written before the index existed, or copied in
        except OSError:
            pass  # a read-only runs folder: reading scans the run directories instead
    return index


class _Root:
    def __init__(self, path: str) -> None:
        self.path = path


@click.group("runs")
@click.option(
    "--root",
    type=click.Path(file_okay=False),
    default="runs",
    show_default=True,
    envvar=ENV_RUNS_ROOT,
    help=f"Folder of the run directories and the runs index (also ${ENV_RUNS_ROOT}).",
)
@click.pass_context
def runs_group(ctx: click.Context, root: str) -> None:
    """List, show and compare runs: `bestiary runs list`, `bestiary runs show RUN`,
    `bestiary runs compare RUN RUN --plot curves.png`.

    A RUN is a run id, a unique part of one (its start, or its random suffix), or the path of a
    run directory.
    """
    ctx.obj = _Root(root)


@runs_group.command("list")
@_root_option
@click.option(
    "--status",
    multiple=True,
    help="Only runs with this status: running, completed, stopped, interrupted (repeatable).",
)
@click.option(
    "--arch",
    metavar="PATTERN",
    help="Only runs whose architecture matches this fnmatch pattern (bare or plugin:name).",
)
@click.option(
    "--limit", "-n", type=click.IntRange(min=0), default=None, help="At most N runs, newest first (0: all)."
)
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array.")
def list_command(
    root: Path | None, status: tuple[str, ...], arch: str | None, limit: int | None, as_json: bool
) -> None:
    """List runs, newest first."""
    index = _index(root)
    rows = index.rows(limit=limit, status=status or None, arch=arch)
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    if not rows:
        filtered = " matching the filters" if status or arch else ""
        click.secho(
            f"no runs{filtered} under {index.root}; train one with `bestiary train`, "
            f"or pass --root (or set {ENV_RUNS_ROOT})",
            fg="yellow",
            err=True,
        )
        return
    # Bare part names: the table must stay readable; --json and `runs show` give qualified ones.
    # "best (validation)": the monitored metric's best validation value, not a test figure.
    header = ["id", "status", "arch", "dataset", "task", "strategy", "steps", "best (validation)", "wall time", "created"]
    table = [
        [
            r["id"],
            r["status"] or "-",
            _bare(r["arch"]),
            _bare(r["dataset"]),
            r["task"] or "-",
            _bare(r["strategy"]),
            _steps(r["steps"], r["total_steps"]),
            _best(r["monitor"], r["best"]),
            _duration(r["wall_time_s"]),
            _when(r["created"]),
        ]
        for r in rows
    ]
    if len(rows) > RICH_ROWS:
        _print_plain(header, table)
        return
    # rich only for people: --json never pays for it.
    from rich.table import Table
    from rich.text import Text

    out = Table(title=Text(f"runs in {index.root} ({len(rows)})"), title_justify="left")
    for column in header:
        out.add_column(
            column,
            overflow="fold",
            no_wrap=column in ("steps", "wall time", "created"),
            justify="right" if column in ("steps", "wall time") else "left",
        )
    for row in table:
        out.add_row(*map(Text, row))
    make_console().print(out)


@runs_group.command("show")
@_root_option
@click.argument("run")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON object.")
def show_command(root: Path | None, run: str, as_json: bool) -> None:
    """Show a run's config, resolved parts, summary and last metrics."""
    from ..engine.compare import load

    index = _index(root)
    try:
        (found,) = load([run], index)
    except RunNotFoundError as exc:
        raise RunProblem(str(exc)) from exc
    data = found.to_dict()
    if as_json:
        click.echo(json.dumps(data, indent=2, default=str))
        return
    from rich.table import Table
    from rich.text import Text

    console = make_console()
    console.print(Text.assemble((data["id"], "bold"), f"  {data['status']}  {data['path']}"))
    for title, section in (
        ("config", data["config"]),
        ("resolved", data["resolved"]),
        ("summary", _flat_summary(data["summary"])),
    ):
        table = Table(show_header=False, title=title, title_justify="left")
        table.add_column(style="bold")
        table.add_column(overflow="fold")
        for key, value in section.items():
            table.add_row(Text(key), Text(_cell(value)))
        if section:
            console.print(table)
    last = data["last_metrics"]
    if last:
        names = sorted({k for r in last.values() for k in r} - {"split", "step", "epoch", "time"})
        table = Table(title="last metrics", title_justify="left")
        for column in ("split", "step", "epoch", *names):
            table.add_column(column, justify="left" if column == "split" else "right")
        for split, record in last.items():
            table.add_row(Text(split), *(Text(_cell(record.get(c))) for c in ("step", "epoch", *names)))
        console.print(table)
    else:
        console.print("no metrics logged yet", style="yellow")


@runs_group.command("compare")
@_root_option
@click.argument("runs", nargs=-1, required=True)
@click.option(
    "--metric", "-m", help="Metric to compare and plot (default: the metric the first run monitored)."
)
@click.option(
    "--plot",
    "plot_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write a PNG of the metric's curves against step to this file.",
)
@click.option("--json", "as_json", is_flag=True, help="Print a JSON object.")
def compare_command(
    root: Path | None, runs: tuple[str, ...], metric: str | None, plot_file: Path | None, as_json: bool
) -> None:
    """Compare RUNS: parameters that differ, best and final metrics, and (with --plot) curves."""
    from ..engine.compare import compare, load, plot

    index = _index(root)
    try:
        comparison = compare(load(list(runs), index), metric)
    except (RunNotFoundError, UnknownMetricError) as exc:
        raise RunProblem(str(exc)) from exc
    written = plot(comparison, plot_file) if plot_file is not None else None
    if as_json:
        data = {**comparison.to_dict(), "plot": str(written) if written else None}
        click.echo(json.dumps(data, indent=2, default=str))
        return
    from rich.table import Table
    from rich.text import Text

    m = comparison.metric
    table = Table(title=Text(f"{len(comparison.runs)} runs on {m} ({comparison.mode})"), title_justify="left")
    table.add_column("", style="bold")
    for run in comparison.runs:
        table.add_column(Text(run.id), overflow="fold")

    def row(label: str, cells: Any) -> None:
        table.add_row(Text(label), *(c if isinstance(c, Text) else Text(c) for c in cells))

    for key, values in comparison.parameters.items():
        row(key, (_cell(v) for v in values))
    table.add_section()
    row("status", (run.status for run in comparison.runs))
    row("steps", (_steps(r.summary.get("steps"), r.summary.get("total_steps")) for r in comparison.runs))
    row("wall time", (_duration(r.summary.get("wall_time_s")) for r in comparison.runs))
    row(f"best {m} (validation)", (_best_cell(b, comparison) for b in comparison.best))
    for name in comparison.final_names():
        row(f"final {name} (validation)", (_cell(f.get(name)) for f in comparison.final))
    console = make_console()
    console.print(table)
    if written:
        console.print(Text(f"plot: {written}"))


@runs_group.command("rebuild")
@_root_option
@click.option("--json", "as_json", is_flag=True, help="Print a JSON object.")
def rebuild_command(root: Path | None, as_json: bool) -> None:
    """Re-create the runs index from the run directories (after copying or deleting runs)."""
    index = RunsIndex(_root(root))
    try:
        count = index.rebuild()
    except OSError as exc:
        raise click.ClickException(
            f"cannot write the runs index {index.file}: {exc.strerror or exc}; make {index.root} writable "
            "(listing and showing runs work without it)"
        ) from exc
    if as_json:
        click.echo(json.dumps({"root": str(index.root), "index": str(index.file), "runs": count}))
    else:
        click.echo(f"indexed {count} run(s) under {index.root} in {index.file}")


# -- formatting -------------------------------------------------------------------------------


def _print_plain(header: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths)).rstrip()]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
    click.echo("\n".join(lines))


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return "nan" if math.isnan(value) else f"{value:.6g}"
    if isinstance(value, (dict, list)):
        return json.dumps(value, default=str) if value else "-"
    return str(value)


def _best(metric: str | None, value: float | None) -> str:
    return "-" if value is None else f"{metric or '?'} {value:.4g}"


def _best_cell(best: dict[str, Any], comparison: Any) -> Any:
    """``value @ step``, in green for the best of several runs when their values compare: runs of
    one task, and for the loss one architecture (each model has its own objective)."""
    from rich.text import Text

    value = best.get("value")
    if value is None:
        return Text("-")
    values = [b["value"] for b in comparison.best if b.get("value") is not None]
    top = (max if comparison.mode == "max" else min)(values)
    style = "green" if len(values) > 1 and value == top and _alike(comparison) else ""
    return Text(f"{value:.6g} @ {best.get('step')}", style=style)


def _alike(comparison: Any) -> bool:
    """Whether the runs' values of the compared metric can be ranked against each other."""
    tasks = {r.resolved.get("task") for r in comparison.runs}
    archs = {r.resolved.get("arch") for r in comparison.runs}
    return len(tasks) == 1 and (comparison.metric != "loss" or len(archs) == 1)


def _steps(steps: int | None, total: int | None) -> str:
    if steps is None:
        return "-" if total is None else f"?/{total}"
    return f"{steps}/{total}" if total is not None else str(steps)


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 10:
        return f"{seconds:.2f}s"
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    return f"{minutes // 60}h{minutes % 60:02d}m"


def _bare(name: str | None) -> str:
    """``toyzoo:toy_mlp`` -> ``toy_mlp`` for narrow tables; --json keeps qualified names."""
    return "-" if not name else name.partition(":")[2] or name


def _when(created: float | None) -> str:
    return "-" if created is None else time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(created))


def _flat_summary(summary: dict[str, Any]) -> dict[str, Any]:
    """``final`` and ``best`` spread out as ``final.accuracy``, ``best.value``, ..."""
    out: dict[str, Any] = {}
    for key, value in summary.items():
        if isinstance(value, dict) and value and key in ("final", "best"):
            out.update({f"{key}.{k}": v for k, v in value.items()})
        else:
            out[key] = value
    return out
