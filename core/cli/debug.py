"""``bestiary debug RUN_DIR``: replay debugger rules on a finished run."""

from __future__ import annotations

import json

import click


@click.command("debug")
@click.argument("run_dir", type=click.Path(exists=True, file_okay=False))
@click.option("--rules", help="default, all, or rule names (comma separated); default: the rules the run used.")
@click.option("--set", "sets", multiple=True, metavar="RULE.PARAM=VALUE",
              help="Override a rule parameter, e.g. --set vanishing_gradient.threshold=1e-8 (repeatable).")
@click.option("--report", "report_path", type=click.Path(dir_okay=False),
              help="Also write the report (Markdown) to this file.")
@click.option("--json", "as_json", is_flag=True, help="Print the findings as JSON lines.")
def debug_command(run_dir: str, rules: str | None, sets: tuple[str, ...], report_path: str | None,
                  as_json: bool) -> None:
    """Run debugger rules on the statistics RUN_DIR saved while it trained (with --rules).

    \b
    bestiary debug runs/20261126-101500-resnet18-digits-1a2b
    bestiary debug RUN_DIR --rules all --set loss_not_decreasing.window=20

    Exit status 0 with or without findings; the findings are printed, one per line.
    """
    from ..debug.replay import replay, saved_settings
    from ..debug.report import render, summary_line
    from ..engine.config import apply_set
    from ..engine.rundir import RunDir

    options = None
    if sets:
        saved = saved_settings(RunDir(run_dir).read_json("config.json")["config"])[1]
        options = json.loads(json.dumps(saved))
        for item in sets:
            if "." not in item.partition("=")[0]:
                raise click.UsageError(f"--set expects RULE.PARAM=VALUE, got {item!r}")
            apply_set(options, item)
    findings, ran, records = replay(run_dir, rules, options=options)
    info = json.loads((RunDir(run_dir).path / "debug" / "info.json").read_text())
    runnable = [r for r in ran if r.device is None or r.device == info.get("device", "cpu")]
    if as_json:
        for f in findings:
            click.echo(json.dumps(f.to_dict()))
    else:
        for f in findings:
            click.echo(f.line())
        # the same closing line as a live run's, naming the run replayed
        click.echo(f"{summary_line(findings, len(runnable), records, skipped=len(ran) - len(runnable), report=report_path)}"
                   f" ({run_dir})", err=True)
    if report_path:
        every = info.get("every", 0)
        with open(report_path, "w") as out:
            out.write(render(findings, runnable, title=f"Debugger report (replayed): {run_dir}", every=every,
                             records=records, skipped=[r for r in ran if r not in runnable]))
