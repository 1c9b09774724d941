"""``bestiary bench``: list suites, run one into a folder of results and reports, compare two runs."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import click

from ..host import get_host
from . import console as make_console


@click.group("bench")
def bench_group() -> None:
    """Benchmark suites: quality, throughput, scaling and registry measurements.

    `bestiary bench list` shows the suites, `bestiary bench run quickstart` runs one and prints
    its leaderboard, `bestiary bench compare OLD NEW` flags regressions. See docs/benchmarks.md.
    """


@bench_group.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array.")
def list_command(as_json: bool) -> None:
    """List the registered suites (built-in and from installed plugins)."""
    entries = list(get_host().registry.table("benchmarks"))
    if as_json:
        click.echo(json.dumps([{"name": e.name, "qualified_name": e.qualified_name, "measure": e.metadata.get("measure"),
                                "description": e.description, "plugin": e.provenance.plugin} for e in entries], indent=2))
        return
    from rich.table import Table

    table = Table(title=f"benchmark suites ({len(entries)})")
    for col in ("name", "measure", "plugin", "description"):
        table.add_column(col, overflow="fold")
    for e in entries:
        table.add_row(e.name, str(e.metadata.get("measure", "-")), e.provenance.plugin, e.description)
    make_console().print(table)


@bench_group.command("run")
@click.argument("suite")
@click.option("--filter", "pattern", metavar="PATTERN",
              help="Run only cells whose id, or a part of it, matches this fnmatch pattern (e.g. 'resnet*').")
@click.option("--repeats", type=click.IntRange(min=1), help="Measurements per cell (default: the suite's).")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path),
              help="Output folder (default: bench/SUITE); a rerun into it skips finished cells.")
@click.option("--rerun", is_flag=True, help="Measure finished cells again.")
@click.option("--list-cells", is_flag=True, help="Print the cells the run would measure, and stop.")
@click.option("--no-plots", is_flag=True, help="Write the leaderboard but no PNG plots.")
def run_command(suite: str, pattern: str | None, repeats: int | None, out: Path | None, rerun: bool,
                list_cells: bool, no_plots: bool) -> None:
    """Run SUITE (a registered name, or a suite .toml file) and print its leaderboard.

    Writes OUT/results.jsonl (one row per cell, with its method), OUT/leaderboard.md and PNG
    plots. A cell that fails becomes an error row and the others still run.
    """
    # the runner imports torch: only `bench run` pays for it
    from ..benchmarks.report import write_reports
    from ..benchmarks.runner import run_suite, select_cells
    from ..benchmarks.suite import resolve_suite

    spec = resolve_suite(suite)
    if list_cells:
        for cell in select_cells(spec, pattern):
            click.echo(cell.id + (f"    (error: {cell.error.splitlines()[0]})" if cell.error else ""))
        return
    out = out or Path("bench") / spec.name
    started = time.perf_counter()
    click.echo(f"suite {spec.name} ({spec.measure}): {spec.description}")
    rows = run_suite(spec, out, pattern=pattern, repeats=repeats, rerun=rerun,
                     echo=lambda line: click.echo(line, err=False))
    if no_plots:
        from ..benchmarks.report import LEADERBOARD, leaderboard

        text = leaderboard(rows, f"{spec.name}: {spec.description}")
        (out / LEADERBOARD).write_text(text + "\n", encoding="utf-8")
        files = [out / LEADERBOARD]
    else:
        text, files = write_reports(rows, out, f"{spec.name}: {spec.description}")
    click.echo("")
    click.echo(text)
    errors = sum(r["status"] != "ok" for r in rows)
    click.echo(f"{len(rows)} cells, {errors} errors, {time.perf_counter() - started:.0f} s; "
               f"results in {out / 'results.jsonl'}; reports: {', '.join(str(f) for f in files)}")


@bench_group.command("compare")
@click.argument("old", type=click.Path(exists=True, path_type=Path))
@click.argument("new", type=click.Path(exists=True, path_type=Path))
@click.option("--threshold", default="5%", show_default=True,
              help="Relative change past which a worse value is a regression (5% or 0.05).")
@click.option("--metric", "metrics", multiple=True, help="Compare only this metric (repeatable).")
@click.option("--json", "as_json", is_flag=True, help="Print the comparison as JSON.")
def compare_command(old: Path, new: Path, threshold: str, metrics: tuple[str, ...], as_json: bool) -> None:
    """Compare results OLD and NEW (output folders or results.jsonl files).

    Prints every change; exits 1 when a metric got worse by more than the threshold (throughput
    falling, time or memory rising, a quality metric moving the wrong way) or a cell that
    succeeded before now fails.
    """
    from ..benchmarks.report import compare, parse_threshold

    result = compare(old, new, parse_threshold(threshold), list(metrics) or None)
    if as_json:
        click.echo(json.dumps(result, indent=2, default=str))
    else:
        _print_comparison(result)
    if result["regressions"]:
        sys.exit(1)


def _print_comparison(result: dict[str, Any]) -> None:
    from rich.table import Table

    table = Table(title=f"changes (threshold {result['threshold']:.1%})")
    for col in ("suite", "cell", "metric", "old", "new", "change", "verdict"):
        table.add_column(col, overflow="fold")
    for c in result["changes"]:
        change = "-" if c["change"] is None else f"{c['change']:+.1%}"
        verdict = "REGRESSION" if c["regression"] else ("not judged" if c.get("better") is None and c["metric"] != "status" else "ok")
        old = c["old"] if isinstance(c["old"], str) else f"{c['old']:.4g}"
        new = c["new"] if isinstance(c["new"], str) else f"{c['new']:.4g}"
        table.add_row(c["suite"], c["cell"], c["metric"], old, new, change, verdict)
    console = make_console()
    console.print(table)
    for label in ("missing", "added"):
        if result[label]:
            console.print(f"cells {label} in NEW: {', '.join(result[label])}")
    n = len(result["regressions"])
    console.print(f"{n} regression{'s' if n != 1 else ''} past {result['threshold']:.1%}" if n else
                  f"no regression past {result['threshold']:.1%}")
