"""The container side of a SageMaker job: ``python -m bestiary.plugins.launchers.sagemaker.container``.

Honours the SageMaker training contract, whether the container was started by the SageMaker
Python SDK's driver scripts or by the ``sagemaker-training`` toolkit of the framework images:

- the job file ``bestiary_job.json`` and the run config ``bestiary_config.toml`` lie next to the
  entry script (the uploaded code directory);
- hyperparameters (``SM_HPS``; a tuning job's trial values) override config fields
  (``lr``, ``model.drop_rate``); ``sagemaker_*`` and ``_*`` keys belong to SageMaker;
- ``${SM_CHANNEL_<NAME>}`` in ``data``, ``model`` and ``weights`` values becomes the channel's folder;
- the run directory is ``<checkpoints>/run``, where ``<checkpoints>`` is ``/opt/ml/checkpoints``
  (``$BESTIARY_CHECKPOINT_DIR``, or ``$SAGEMAKER_BASE_DIR/checkpoints``): SageMaker syncs it to the
  checkpoint S3 URI and restores it when an interrupted job starts again, and the run then resumes
  from its last checkpoint (a tuning trial uses ``<checkpoints>/$TRAINING_JOB_NAME/run``);
- several processes per instance, or several instances (``SM_HOSTS``, ``SM_CURRENT_HOST``), run
  under torchrun: started by the SDK or the toolkit (``RANK`` is set), or else started here;
- the model lands in ``SM_MODEL_DIR`` (``bestiary.load_model`` reads it), metrics, config,
  summary and TensorBoard events in ``SM_OUTPUT_DATA_DIR``;
- each evaluation prints ``[bestiary] step=N validation:NAME=VALUE ...`` for metric definitions.

The training itself is :func:`bestiary.extend.start_run` (continuing the run directory when it
holds a run), or the ``local`` launcher's torchrun for several processes: the same code path as
``bestiary train`` on a machine. A job of another command (``bestiary jobs submit -- bench run
NAME``) runs it in ``<checkpoints>/work`` and copies that folder to ``SM_OUTPUT_DATA_DIR``.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bestiary.extend import ConfigError

JOB_FILE = "bestiary_job.json"
CONFIG_FILE = "bestiary_config.toml"
JOB_FORMAT = "bestiary-job/1"
METRICS_PLUGIN = "bestiary_job_metrics=bestiary.plugins.launchers.sagemaker.metrics_log"
#: Set ("1") for tuning trials: each keeps its run in a folder named after its training job.
RUN_PER_JOB_ENV = "BESTIARY_RUN_PER_JOB"
#: Outputs of the run directory copied to SM_OUTPUT_DATA_DIR (the model goes to SM_MODEL_DIR).
OUTPUTS = ("config.json", "summary.json", "metrics.jsonl", "tensorboard", "report")


@dataclass
class SageMakerEnv:
    """What the container was told, read from the environment the SDK or the toolkit set."""

    base: Path
    model_dir: Path
    output_data_dir: Path
    checkpoint_dir: Path
    hosts: list[str]
    current_host: str
    num_gpus: int
    hyperparameters: dict[str, Any]
    channels: dict[str, str] = field(default_factory=dict)
    job_name: str | None = None
    run_per_job: bool = False

    @classmethod
    def from_environ(cls, environ: Any = None) -> SageMakerEnv:
        env = os.environ if environ is None else environ
        base = Path(env.get("SAGEMAKER_BASE_DIR") or "/opt/ml")
        hosts_raw = env.get("SM_HOSTS") or '["localhost"]'
        try:
            hosts = list(json.loads(hosts_raw))
        except json.JSONDecodeError:
            hosts = [h for h in hosts_raw.split(",") if h]
        try:
            hps = json.loads(env.get("SM_HPS") or "{}")
        except json.JSONDecodeError as exc:
            raise ConfigError(f"SM_HPS is not JSON: {exc}") from exc
        return cls(
            base=base,
            model_dir=Path(env.get("SM_MODEL_DIR") or base / "model"),
            output_data_dir=Path(env.get("SM_OUTPUT_DATA_DIR") or base / "output" / "data"),
            checkpoint_dir=Path(env.get("BESTIARY_CHECKPOINT_DIR") or base / "checkpoints"),
            hosts=hosts or ["localhost"],
            current_host=env.get("SM_CURRENT_HOST") or (hosts[0] if hosts else "localhost"),
            num_gpus=int(env.get("SM_NUM_GPUS") or 0),
            hyperparameters=hps,
            channels={k[len("SM_CHANNEL_"):].lower(): v for k, v in env.items() if k.startswith("SM_CHANNEL_")},
            job_name=env.get("TRAINING_JOB_NAME") or None,
            run_per_job=env.get(RUN_PER_JOB_ENV, "") == "1",
        )

    @property
    def run_dir(self) -> Path:
        """``<checkpoints>/run``; for the trials of a tuning job, which may share a checkpoint
        location, ``<checkpoints>/<training job name>/run``."""
        if self.run_per_job and self.job_name:
            return self.checkpoint_dir / self.job_name / "run"
        return self.checkpoint_dir / "run"


def trial_overrides(hps: dict[str, Any]) -> list[str]:
    """``key=value`` settings (as for ``--set``) from hyperparameters, leaving SageMaker's own."""
    out = []
    for key, value in sorted(hps.items()):
        if key.startswith(("sagemaker_", "_")):
            continue
        if isinstance(value, str):
            out.append(f"{key}={value}")  # parsed as TOML ("0.01" -> 0.01), a bare word stays a string
        else:
            out.append(f"{key}={json.dumps(value)}")
    return out


def _expand(value: Any, channels: dict[str, str]) -> Any:
    if isinstance(value, dict):
        return {k: _expand(v, channels) for k, v in value.items()}
    if isinstance(value, list):
        return [_expand(v, channels) for v in value]
    if isinstance(value, str) and "SM_CHANNEL_" in value:
        expanded = os.path.expandvars(value)
        if "SM_CHANNEL_" in expanded:
            from bestiary.extend import ConfigError

            given = ", ".join(sorted(channels)) or "none"
            raise ConfigError(f"{value!r} names an input channel the job does not have (channels: {given}); "
                              "pass it with --input-s3 NAME=s3://...")
        return expanded
    return value


def job_config(code_dir: Path, env: SageMakerEnv) -> Any:
    """The run config of the job: the shipped file, trial hyperparameters, channel folders and the
    run directory under the checkpoint folder. Plugin options are checked against their
    declarations and their defaults filled in, as ``bestiary train --config`` does."""
    from bestiary.extend import RunConfig, complete_options

    cfg = RunConfig.load(code_dir / CONFIG_FILE, sets=trial_overrides(env.hyperparameters))
    return cfg.replace(data=_expand(cfg.data, env.channels), model=_expand(cfg.model, env.channels),
                       weights=_expand(cfg.weights, env.channels), run_dir=str(env.run_dir),
                       runs_root=str(env.checkpoint_dir), quiet=True, options=complete_options(cfg.options))


def read_job(code_dir: Path) -> dict[str, Any]:
    path = code_dir / JOB_FILE
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing: start SageMaker jobs with `bestiary train --launcher sagemaker`, "
                                "which uploads it next to the entry script")
    job = json.loads(path.read_text())
    if job.get("format") != JOB_FORMAT:
        raise ConfigError(f"{path} has format {job.get('format')!r}, this bestiary reads {JOB_FORMAT!r}; use the "
                         "same bestiary version on both sides (--bestiary-source source)")
    return job


def train_here(cfg: Any, main_process: bool) -> int:
    """Train the job's run in this process (continuing it when its directory holds one); the exit
    status ``bestiary train`` would give: 0, 130/143 when interrupted, 2 for a config error."""
    from bestiary.extend import (
        ConfigError,
        LookupFailure,
        TaskMismatchError,
        interrupted_exit_code,
        start_run,
    )

    try:
        summary = start_run(cfg, resume_existing=True)
    except (ConfigError, LookupFailure, TaskMismatchError) as exc:  # the user's to fix: one line, no traceback
        _say(f"error: {exc}")
        return 2
    if main_process:
        _say(f"run {summary['status']} after {summary['steps']} steps: {summary['run_dir']}")
    return interrupted_exit_code(summary) if summary["status"] == "interrupted" else 0


def train_torchrun(cfg: Any, env: SageMakerEnv, nproc: int, rdzv_port: int) -> int:
    """Start the run's workers on this instance with torchrun (the ``local`` launcher), joined
    with the other instances' when there are several; their exit status."""
    from bestiary.extend import Job, LaunchOptions, get_launcher

    options = LaunchOptions(nproc_per_node=nproc)
    if len(env.hosts) > 1:
        rank = env.hosts.index(env.current_host) if env.current_host in env.hosts else 0
        options = LaunchOptions(nproc_per_node=nproc, nnodes=len(env.hosts), node_rank=rank,
                                rdzv_endpoint=f"{env.hosts[0]}:{rdzv_port}")
    _say(f"starting {nproc} process(es) on each of {len(env.hosts)} host(s) with torchrun")
    return get_launcher("local").launch(Job("train", options, config=cfg)).exit_code


def export(env: SageMakerEnv) -> bool:
    """Copy the model to ``SM_MODEL_DIR`` and the run's records to ``SM_OUTPUT_DATA_DIR``; whether
    this machine held the model (in a run on several machines, the one of rank 0 does)."""
    run = env.run_dir
    model = run / "model"
    env.output_data_dir.mkdir(parents=True, exist_ok=True)
    for name in OUTPUTS:
        source = run / name
        if source.is_dir():
            shutil.copytree(source, env.output_data_dir / name, dirs_exist_ok=True)
        elif source.exists():
            shutil.copy2(source, env.output_data_dir / name)
    if not (model / "model.json").exists():
        return False
    env.model_dir.mkdir(parents=True, exist_ok=True)
    shutil.copytree(model, env.model_dir, dirs_exist_ok=True)
    return True


def _status(run: Path) -> str | None:
    summary = run / "summary.json"
    return json.loads(summary.read_text()).get("status") if summary.exists() else None


def _say(message: str) -> None:
    print(f"[bestiary] {message}", flush=True)


def run_command(argv: list[str], env: SageMakerEnv) -> int:
    """Run ``bestiary ARGV`` in ``<checkpoints>/work`` (synced, so a restarted job finds what the
    command had written: a benchmark skips the cells it finished), then copy that folder to
    ``SM_OUTPUT_DATA_DIR``."""
    work = env.checkpoint_dir / "work"
    work.mkdir(parents=True, exist_ok=True)
    before = Path.cwd()
    os.chdir(work)
    try:
        _say(f"running `bestiary {' '.join(argv)}` in {work}")
        from bestiary.extend import run_cli  # imports click and the command line, only for command jobs

        rc = run_cli(argv)
    finally:
        os.chdir(before)
    env.output_data_dir.mkdir(parents=True, exist_ok=True)
    shutil.copytree(work, env.output_data_dir, dirs_exist_ok=True)
    return rc


def main(code_dir: str | Path | None = None) -> int:
    """Run the job described next to the entry script; the exit status for the container.

    :param code_dir: the folder holding ``bestiary_job.json`` (default: the entry script's).
    """
    code = Path(code_dir) if code_dir is not None else Path(sys.argv[0]).resolve().parent
    env = SageMakerEnv.from_environ()
    job = read_job(code)
    plugins = [p for p in os.environ.get("BESTIARY_PLUGINS", "").split(",") if p]
    os.environ["BESTIARY_PLUGINS"] = ",".join([*plugins, METRICS_PLUGIN])  # read when the plugin host starts
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in [str(code), os.environ.get("PYTHONPATH", "")] if p)
    if job.get("kind") == "command":
        return run_command(job["argv"], env)
    cfg = job_config(code, env)
    worker = "LOCAL_RANK" in os.environ and "WORLD_SIZE" in os.environ  # started by torchrun
    main_process = os.environ.get("RANK", "0") == "0"
    if main_process:
        from bestiary.extend import __version__

        _say(f"bestiary {__version__} from {Path(__file__).resolve().parents[3]}")
    status = _status(env.run_dir)
    if status in ("completed", "stopped"):
        if main_process:
            _say(f"run {env.run_dir} already {status}; exporting it")
    else:
        if main_process and (env.run_dir / "config.json").exists():
            steps = sorted((env.run_dir / "checkpoints").glob("step-*"))
            _say(f"resuming run {env.run_dir} from {steps[-1].name if steps else 'its start'}")
        nproc = int(job.get("nproc_per_node") or (env.num_gpus or 1))
        if worker or (nproc == 1 and len(env.hosts) == 1):
            rc = train_here(cfg, main_process)
        else:
            rc = train_torchrun(cfg, env, nproc, int(job.get("rdzv_port") or 29400))
        if rc != 0:
            _say(f"training ended with exit status {rc}; the run directory keeps its last checkpoint")
            return rc
    if (main_process or not worker) and export(env):
        _say(f"model written to {env.model_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main(os.environ.get("BESTIARY_CODE_DIR") or Path.cwd()))
