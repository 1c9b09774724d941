"""``bestiary train``, ``bestiary evaluate`` and ``bestiary predict``."""

from __future__ import annotations

import json
import os
import sys
from typing import Any

import click

from ..engine.interrupt import RESUME_FLAG, interrupted_exit_code
from ..engine.rundir import RunDir
from .launch import launch_options, pop_launch_options
from .options import build_config, run_options
from .submit import submit


@click.command("train")
@click.argument("arch", required=False)
@click.option("--resume", type=click.Path(exists=True, file_okay=False), help="Continue the run in this directory from its last checkpoint.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@launch_options
@click.option(RESUME_FLAG, "resume_existing", is_flag=True, hidden=True,
              help="Internal (set by the launcher): continue the config's run directory if it holds a run.")
@run_options
def train_command(arch: str | None, resume: str | None, as_json: bool, resume_existing: bool,
                  **options: Any) -> None:
    """Train ARCH on --dataset and evaluate it; the run lands in a new run directory.

    \b
    bestiary train resnet18 --dataset digits --epochs 3 --lr 0.01
    bestiary train --resume runs/20261126-101500-resnet18-digits-1a2b
    bestiary train resnet18 --dataset digits --strategy ddp --nproc-per-node 2
    bestiary train resnet18 --dataset digits --launcher sagemaker --instance-type ml.g5.xlarge --dry-run

    Ctrl-C or SIGTERM saves a checkpoint and exits (130 / 143); --resume continues.
    """
    from ..launch import Job, get_launcher

    launcher_name, launch = pop_launch_options(options)
    launcher = get_launcher(launcher_name)
    if launcher.name != "local" or launch.dry_run:
        if resume and launcher.name != "local":
            raise click.UsageError(f"--resume continues a run on this machine; a {launcher.name} job resumes from its "
                                   "own checkpoints (see docs/sagemaker.md); drop --resume")
        if not arch and not resume and not options.get("config_file"):
            raise click.UsageError("name an architecture (see `bestiary list architectures`) or pass --config FILE")
        config = None if resume else build_config(arch, options)
        job = Job("train", launch, config=config, resume=resume, quiet=options.get("quiet"))
        sys.exit(submit(launcher, job, as_json))
    from ..engine.torchrun import Launch

    if Launch(launch.nproc_per_node or 1, launch.nnodes).needed:
        sys.exit(_launch(arch, resume, launcher, launch, options))
    if resume_existing and not resume and not arch and options.get("config_file"):
        from ..engine.start import (
            start_run,  # a torchrun worker: trains here, continuing its run after a restart
        )

        _report(start_run(build_config(arch, options), resume_existing=True), as_json)
        return
    if resume:
        given = sorted(k for k, v in options.items() if v not in (None, ()) and k != "quiet")
        if arch or given:
            extra = ", ".join(["ARCH"] * bool(arch) + ["--" + k.replace("_", "-") for k in given])
            raise click.UsageError(f"--resume continues a run with its saved config; drop {extra} "
                                   "(start a new run to change the config)")
        job = Job("train", launch, resume=resume, quiet=options.get("quiet"))
    else:
        if not arch and not options.get("config_file"):
            raise click.UsageError("name an architecture (see `bestiary list architectures`) or pass --resume RUN_DIR")
        if not options.get("dataset") and not options.get("config_file"):
            raise click.UsageError("pass --dataset NAME (see `bestiary list datasets`)")
        job = Job("train", launch, config=build_config(arch, options))
    summary = launcher.launch(job).summary
    if summary is None:
        raise RuntimeError(f"launcher {launcher.name!r} returned no run summary for an in-process run")
    _report(summary, as_json)


def _report(summary: dict[str, Any], as_json: bool) -> None:
    """Print a run's summary (on the main process) and exit 130/143 when it was interrupted."""
    main = os.environ.get("RANK", "0") == "0"  # one summary per run, from the main process
    if main and as_json:
        click.echo(json.dumps(summary, indent=2))
    elif main:
        _print_summary(summary)
    if summary["status"] == "interrupted":
        if main:
            click.echo(f"interrupted; continue with `bestiary train --resume {summary['run_dir']}`", err=True)
        sys.exit(interrupted_exit_code(summary))


def _launch(arch: str | None, resume: str | None, launcher: Any, launch: Any, options: dict[str, Any]) -> int:
    """Start the run's workers with torchrun instead of training here; their exit status."""
    from ..engine.config import RunConfig
    from ..launch import Job

    if resume:
        given = sorted(k for k, v in options.items() if v not in (None, ()) and k != "quiet")
        if arch or given:
            raise click.UsageError("--resume continues a run with its saved config; drop the other options "
                                   "except the launch ones (--nproc-per-node, --nnodes, ...)")
        config = RunConfig.from_dict(RunDir(resume).read_json("config.json")["config"])
    else:
        if not arch and not options.get("config_file"):
            raise click.UsageError("name an architecture (see `bestiary list architectures`) or pass --resume RUN_DIR")
        config = build_config(arch, options)
    return launcher.launch(Job("train", launch, config=config, resume=resume, quiet=options.get("quiet"))).exit_code


def _print_summary(summary: dict[str, Any]) -> None:
    final = ", ".join(f"{k} {v:.4g}" for k, v in summary["final"].items())
    if not final:
        # older summaries lack has_validation; they said "no validation split" for every empty result
        ran_out = summary.get("has_validation", False)
        final = "not evaluated: the run ended before its first validation" if ran_out else "no validation split"
    best = summary["best"]
    click.echo(f"{summary['status']} after {summary['steps']} steps in {summary['wall_time_s']:.2f} s: {final}")
    if summary.get("stop_reason"):
        click.echo(f"stopped because {summary['stop_reason']}")
    if best["value"] is not None:
        click.echo(f"best {best['metric']} {best['value']:.4g} at step {best['step']}")
    click.echo(f"run directory: {summary['run_dir']}")


@click.command("evaluate")
@click.argument("run_dir", type=click.Path(exists=True, file_okay=False))
@click.option("--dataset", help="Evaluate on another dataset of the same task.")
@click.option("--split", type=click.Choice(["test", "validation", "train"]), default="test", show_default=True)
@click.option("--batch-size", type=click.IntRange(min=1), help="Default: the run's batch size.")
@click.option("--device", default="auto", show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print a JSON object.")
def evaluate_command(run_dir: str, dataset: str | None, split: str, batch_size: int | None, device: str, as_json: bool) -> None:
    """Evaluate the model of RUN_DIR on a split (test by default)."""
    from ..engine.evaluate import evaluate_run

    result = evaluate_run(run_dir, dataset=dataset, split=split, batch_size=batch_size, device=device)
    for warning in result.get("warnings", []):
        click.echo(f"Warning: {warning}", err=True)
    if as_json:
        click.echo(json.dumps(result, indent=2))
        return
    click.echo(f"{result['dataset']} [{split}]")
    for key, value in result.items():
        if isinstance(value, float) and key != "time":
            click.echo(f"  {key:<20} {value:.6g}")
    for path in result.get("report", []):
        click.echo(f"  report: {path}")


@click.command("predict")
@click.argument("run_dir", type=click.Path(exists=True, file_okay=False))
@click.option("--input", "input_path", required=True, type=click.Path(exists=True), help="Inputs: .npy/.npz or image files for images, JSON lines for series.")
@click.option("--output", "output_path", required=True, type=click.Path(dir_okay=False), help="Predictions: .jsonl, .json, .csv or .parquet.")
@click.option("--batch-size", type=click.IntRange(min=1), default=256, show_default=True)
@click.option("--device", default="auto", show_default=True)
def predict_command(run_dir: str, input_path: str, output_path: str, batch_size: int, device: str) -> None:
    """Predict with the model of RUN_DIR for every input in --input."""
    from ..engine.predict import predict_file

    n = predict_file(run_dir, input_path, output_path, batch_size=batch_size, device=device)
    click.echo(f"wrote {n} predictions to {output_path}", err=True)
