"""The training loop every caller shares: ``bestiary train``, the tuner, the benchmark runner.

The loop is a set of named steps over a :class:`~bestiary.engine.state.TrainState`:
:meth:`Trainer.setup` assembles the run and restores a checkpoint, :meth:`Trainer.train` runs
:meth:`~Trainer.train_epoch` (each batch through :meth:`~Trainer.train_step` and, at accumulation
boundaries, :meth:`~Trainer.optimizer_step`), :meth:`~Trainer.validate` and :meth:`~Trainer.finish`;
:meth:`~Trainer.save_checkpoint` and :meth:`~Trainer.load_checkpoint` hold the state between
processes. Plugins see the loop through the lifecycle and per-step hooks only.

Exact resume: the data order is a function of ``(seed, epoch)``, checkpoints hold every RNG state
and the position in the epoch, and they are written only between optimizer steps, so a run killed
at any point and resumed from its last checkpoint replays the same steps bit for bit on the CPU.
"""

from __future__ import annotations

import contextlib
import math
import signal
import threading
import time
from pathlib import Path
from typing import Any, Self

import torch  # the trainer runs torch; `import bestiary` never imports this module

from ..errors import ConfigError
from ..host import PluginHost, get_host
from .artifact import save_model
from .assembly import Assembly, assemble
from .config import RunConfig
from .data import batches_per_epoch, set_epoch
from .evaluate import evaluate
from .optim import DEFAULT_LR, build_optimizer, build_scheduler
from .progress import Progress
from .run import Parts, RunContext, autocast, resolve
from .rundir import RunDir, environment, new_run_dir
from .state import TrainState, rng_state, seed_everything, set_rng_state
from .stephooks import StepHooks

__all__ = ["TrainState", "Trainer", "rng_state", "seed_everything", "set_rng_state", "train"]


class _StopFlag:
    """Set by SIGTERM or SIGINT (Ctrl-C): the loop saves a checkpoint at the next step boundary
    and returns; a second Ctrl-C interrupts at once."""

    SIGNALS = (signal.SIGTERM, signal.SIGINT)

    def __init__(self) -> None:
        self.set = False
        self.signum: int | None = None
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> Self:
        if threading.current_thread() is threading.main_thread():
            for sig in self.SIGNALS:
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        if self.set and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.set, self.signum = True, signum

    def __exit__(self, *exc: object) -> None:
        for sig, previous in self._previous.items():
            signal.signal(sig, previous)


class Trainer:
    """Train one run from a config, or resume one from its directory.

    :param config: the run config; when resuming, the saved config is used instead.
    :param host: plugin host (default: the process-wide one).
    :param resume: a run directory to continue from its last checkpoint.
    :param quiet: override the config's ``quiet`` (no progress bar).
    """

    def __init__(self, config: RunConfig | None = None, *, host: PluginHost | None = None,
                 resume: str | Path | None = None, quiet: bool | None = None) -> None:
        self.host = host or get_host()
        self.resume_dir = Path(resume) if resume is not None else None
        if self.resume_dir is not None:
            config = _saved_config(self.resume_dir)
        if config is None:
            raise ValueError("give a config or a run directory to resume")
        self.cfg = config if quiet is None else config.replace(quiet=quiet)
        self.parts: Parts = resolve(config, self.host)
        # plugins check their options (debugger rule names) before anything is built
        self.host.pm.hook.on_run_configure(config=self.cfg, host=self.host)
        self.state = TrainState()

    def run(self) -> dict[str, Any]:
        """Train, evaluate and export; return the summary (also written to ``summary.json``)."""
        task = self.parts.task.build()
        strategy = self.parts.strategy.build(**self.cfg.strategy_options)
        strategy.setup(self.cfg.device)
        autocast(self.cfg.precision, strategy.device)  # refuse an impossible precision before building anything
        try:
            self.setup(task, strategy)
            return self.train()
        finally:
            strategy.teardown()

    # -- set-up -------------------------------------------------------------------------------------

    def setup(self, task: Any, strategy: Any) -> None:
        """Seed, assemble the run, wrap it in ``strategy``, open the run directory, restore the last
        checkpoint when resuming and record the config."""
        cfg = self.cfg
        seed_everything(cfg.seed)
        if cfg.deterministic:
            torch.use_deterministic_algorithms(True, warn_only=True)
            torch.backends.cudnn.benchmark = False
        self.strategy = strategy
        self.assembly: Assembly = assemble(cfg, self.parts, task)
        self.task, self.data = task, self.assembly.data
        self.model = strategy.prepare_model(self.assembly.model, channels_last=cfg.channels_last)
        self.optimizer = build_optimizer(self.model, cfg)
        self.train_set = self.data.split("train")
        self.per_epoch = batches_per_epoch(len(self.train_set), cfg.batch_size, strategy.topology.dp_size)
        self.total_steps = math.ceil(self.per_epoch / cfg.accumulate) * cfg.epochs
        if cfg.max_steps is not None:
            self.total_steps = min(self.total_steps, cfg.max_steps)
        self.scheduler = build_scheduler(self.optimizer, cfg, self.total_steps)
        self.amp = autocast(cfg.precision, strategy.device)
        self.scaler = torch.amp.GradScaler("cuda") if cfg.precision == "fp16" else None
        self.forward_model = torch.compile(self.model) if cfg.compile else self.model
        self.rd = RunDir(self._open_run_dir())
        checkpoint = self.rd.latest_checkpoint() if self.resume_dir is not None else None
        if checkpoint is not None:
            self.load_checkpoint(checkpoint)
        self._write_config()
        self.ctx = RunContext(cfg, self.rd.path, strategy, self.model, task, _hparams(cfg, self.parts),
                              self.state.step, host=self.host, data=self.data, total_steps=self.total_steps,
                              state=self.state)

    def _open_run_dir(self) -> Path:
        """The run directory: the resumed one, or a new one the main process creates and shares."""
        cfg, strategy = self.cfg, self.strategy
        if self.resume_dir is not None:
            path: Path | None = self.resume_dir
            if strategy.is_main:  # before the broadcast below, which every rank waits for
                RunDir(self.resume_dir).clean_stale_checkpoints()  # a resumed run has no live writer
        elif strategy.is_main:
            path = Path(cfg.run_dir) if cfg.run_dir else new_run_dir(cfg.runs_root, self.parts.arch.name,
                                                                    self.parts.dataset.name)
            if RunDir(path).exists():
                raise ConfigError(f"run directory {path} already holds a run; continue it with "
                                  f"`bestiary train --resume {path}` or choose another --run-dir")
            path.mkdir(parents=True, exist_ok=True)
        else:
            path = None
        return Path(strategy.broadcast_object(str(path) if path else None))

    def _write_config(self) -> None:
        if not self.strategy.is_main:
            return
        cfg, parts, built, rd = self.cfg, self.parts, self.assembly, self.rd
        if self.resume_dir is not None:
            rd.truncate_metrics(self.state.step, evaluated=self.state.closed_at == self.state.step)
        rd.write_json("config.json", {"config": cfg.to_dict(), "resolved": {
            "arch": parts.arch.qualified_name, "dataset": parts.dataset.qualified_name,
            "strategy": parts.strategy.qualified_name, "task": parts.task.name,
            "metrics": [m.qualified_name for m in parts.metrics], "model_kwargs": built.model_kwargs,
            "monitor": built.monitor, "mode": built.mode, "total_steps": self.total_steps,
            "world_size": self.strategy.world_size, "topology": self.strategy.topology.as_dict(),
        }, "environment": environment([p.to_dict() for p in self.host.plugins]), "status": "running"})
        _index(rd)

    # -- checkpoints --------------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """What a checkpoint holds besides the model and optimizer: the training state, the RNG
        streams, the schedule and the loss scaler."""
        return {"state": self.state.state_dict(), "rng": rng_state(), "scheduler": self.scheduler.state_dict(),
                "scaler": self.scaler.state_dict() if self.scaler is not None else None}

    def load_state_dict(self, extra: dict[str, Any]) -> None:
        """Restore :meth:`state_dict` output (the RNG streams last: nothing may draw after them)."""
        self.scheduler.load_state_dict(extra["scheduler"])
        if self.scaler is not None and extra.get("scaler"):
            self.scaler.load_state_dict(extra["scaler"])
        self.state.load_state_dict(extra["state"])
        set_rng_state(extra["rng"])

    def save_checkpoint(self) -> None:
        """Write a checkpoint of the current step (between optimizer steps only)."""
        target = self.rd.checkpoint_path(self.state.step)
        self.strategy.save_checkpoint(target, self.model, self.optimizer, self.state_dict())
        if self.strategy.is_main:
            self.rd.prune_checkpoints(self.cfg.keep_checkpoints)
        self.host.pm.hook.on_checkpoint_saved(run=self.ctx, step=self.state.step, path=target)

    def load_checkpoint(self, path: Path) -> None:
        """Restore the model, optimizer and :meth:`state_dict` from the checkpoint at ``path``."""
        self.load_state_dict(self.strategy.load_checkpoint(path, self.model, self.optimizer))

    # -- the loop -----------------------------------------------------------------------------------

    def train(self) -> dict[str, Any]:
        """Run the loop from the current state to the end; return the summary."""
        try:
            self.host.pm.hook.on_run_start(run=self.ctx)
            self.hooks = StepHooks(self.host.pm)  # after on_run_start: it may register per-run plugins
            self._loss_fn = self._loss if self.hooks.before_backward is None else self._observed_loss
            self.progress = Progress(self.total_steps, enabled=not self.cfg.quiet and self.strategy.is_main,
                                     start_step=self.state.step)
            self.started = time.perf_counter()
            with _StopFlag() as stop:
                status = self._loop(stop)
            return self.finish(status, stop)
        except BaseException as exc:
            self._fail(exc)
            raise

    def _loop(self, stop: _StopFlag) -> str:
        cfg, state = self.cfg, self.state
        self._window_reset()
        self._last_norm: torch.Tensor | None = None
        self.model.train()
        loader = self.strategy.loader(self.train_set, batch_size=cfg.batch_size, shuffle=True, seed=cfg.seed,
                                      epoch=state.epoch, skip_batches=state.batch_in_epoch,
                                      num_workers=cfg.num_workers, collate=self.data.train_collate or self.data.collate)
        status = "completed"
        if state.step >= self.total_steps and state.closed_at != state.step:
            # resumed from a checkpoint of the last step written before its closing evaluation
            status = self.end_epoch()
        while state.epoch < cfg.epochs and state.step < self.total_steps and status == "completed":
            status = self.train_epoch(loader, stop)
            if status == "completed":
                status = self.end_epoch()
        self.progress.close()
        return status

    def train_epoch(self, loader: Any, stop: _StopFlag) -> str:
        """Train on the rest of the current epoch, or until the last step or a stop request; return
        ``completed``, ``stopped`` or ``interrupted``."""
        state, accumulate = self.state, self.cfg.accumulate
        set_epoch(loader, state.epoch, state.batch_in_epoch)
        batch_end = self.hooks.on_batch_end
        micro = 0
        for batch in self.hooks.loader(self.ctx, loader):
            boundary = micro + 1 == accumulate or state.batch_in_epoch + 1 == self.per_epoch
            loss = self.train_step(batch, boundary)
            micro += 1
            if not boundary:
                if batch_end is not None:
                    batch_end(run=self.ctx, step=state.step, loss=loss, stepped=False)
                continue
            micro = 0
            self.optimizer_step(loss)
            if batch_end is not None:
                batch_end(run=self.ctx, step=state.step, loss=loss, stepped=True)
            status = self._after_step(stop)
            if status is not None:
                return status
            if state.step >= self.total_steps:
                break
        return "completed"

    def train_step(self, batch: Any, boundary: bool) -> torch.Tensor:
        """Forward and backward one batch (gradients accumulate until ``boundary``); return its
        detached loss."""
        cfg, strategy = self.cfg, self.strategy
        batch = self.task.to_device(batch, strategy.device, cfg.channels_last)
        if self.hooks.on_batch_start is not None:
            self.hooks.on_batch_start(run=self.ctx, step=self.state.step, batch=batch)
        with contextlib.nullcontext() if boundary else strategy.no_sync(self.model):
            loss, _ = strategy.forward_backward(self.forward_model, batch, self._loss_fn, autocast=self.amp,
                                                scale=1.0 / cfg.accumulate, scaler=self.scaler,
                                                split=self.task.split_batch)
        n = self.task.batch_size(batch)
        self._window_loss.add_(loss, alpha=n)
        self._window_n += n
        self.state.batch_in_epoch += 1
        return loss

    def _loss(self, model: torch.nn.Module, batch: Any) -> tuple[torch.Tensor, Any]:
        return self.task.loss(model, batch, label_smoothing=self.cfg.label_smoothing)

    def _observed_loss(self, model: torch.nn.Module, batch: Any) -> tuple[torch.Tensor, Any]:
        loss, outputs = self._loss(model, batch)
        self.hooks.before_backward(run=self.ctx, step=self.state.step, loss=loss)
        return loss, outputs

    def optimizer_step(self, loss: torch.Tensor) -> None:
        """Unscale, clip and apply the accumulated gradients, then advance the schedule."""
        if self.hooks.before_optimizer_step is not None:
            self.hooks.before_optimizer_step(run=self.ctx, step=self.state.step, loss=loss)
        self._last_norm = self.strategy.optimizer_step(self.model, self.optimizer, scaler=self.scaler,
                                                       clip_grad_norm=self.cfg.clip_grad_norm)
        self.scheduler.step()
        self.state.step += 1

    def _after_step(self, stop: _StopFlag) -> str | None:
        """Log, checkpoint and agree on stopping after an optimizer step; the status to end with,
        or ``None`` to go on."""
        step, cfg = self.state.step, self.cfg
        if step % cfg.log_every == 0 or step == self.total_steps:
            self.log_step()
        if cfg.checkpoint_every and step % cfg.checkpoint_every == 0:
            self.save_checkpoint()
        if self.strategy.agree(stop.set or self.ctx.stop_reason is not None):  # one collective per step
            return "interrupted" if stop.set or self.ctx.stop_reason is None else "stopped"
        return None

    def _window_reset(self) -> None:
        self._window_loss = torch.zeros((), device=self.strategy.device)
        self._window_n, self._window_start = 0, time.perf_counter()

    def log_step(self) -> None:
        """Write the training figures averaged since the last log step; call ``on_step_end``."""
        state, strategy = self.state, self.strategy
        now = time.perf_counter()
        samples = self._window_n * strategy.topology.dp_size
        record = {"loss": float(self._window_loss) / max(self._window_n, 1), "lr": self.scheduler.get_last_lr()[0],
                  "samples_per_s": samples / max(now - self._window_start, 1e-9)}
        if self._last_norm is not None:
            record["grad_norm"] = float(self._last_norm)
        state.samples += samples
        state.train_time += now - self._window_start
        if strategy.is_main:
            self.rd.log({"step": state.step, "epoch": state.epoch, "split": "train", **record, "time": time.time()})
        self.host.pm.hook.on_step_end(run=self.ctx, step=state.step, metrics=record)
        self.progress.update(state.step, state.epoch, record["loss"], record["samples_per_s"])
        self._window_loss.zero_()
        self._window_n, self._window_start = 0, time.perf_counter()

    def end_epoch(self) -> str:
        """Close a finished epoch and validate when due; return the status to go on with."""
        state, cfg = self.state, self.cfg
        if state.batch_in_epoch >= self.per_epoch:
            state.epoch += 1
            state.batch_in_epoch = 0
        last_epoch = state.epoch >= cfg.epochs or state.step >= self.total_steps
        state.closed_at = state.step  # no checkpoint comes before the evaluation below ends
        if self.data.validation is not None and (state.epoch % cfg.eval_every == 0 or last_epoch):
            return self.validate()
        return "completed"

    def validate(self) -> str:
        """Evaluate on the validation split, track the best value and early stopping; return
        ``stopped`` when the run should end, else ``completed``."""
        state, built, cfg = self.state, self.assembly, self.cfg
        results = self._evaluate(self.data.validation, self.data.collate)
        state.last_eval = results
        if self.strategy.is_main:
            self.rd.log({"step": state.step, "epoch": state.epoch, "split": "validation", **results, "time": time.time()})
        self.host.pm.hook.on_evaluation_end(run=self.ctx, step=state.step, split="validation", metrics=results)
        value, status = results[built.monitor], "completed"
        if state.improves(value, built.mode):
            state.best, state.best_step, state.bad_evals = value, state.step, 0
        else:
            state.bad_evals += 1
            if cfg.early_stopping is not None and state.bad_evals >= cfg.early_stopping:
                status = "stopped"
                self.ctx.request_stop(f"{built.monitor} did not improve for {cfg.early_stopping} evaluations")
        if self.strategy.agree(self.ctx.stop_reason is not None):
            status = "stopped"
        return status

    def _evaluate(self, dataset: Any, collate: Any) -> dict[str, float]:
        cfg = self.cfg
        loader = self.strategy.loader(dataset, batch_size=cfg.eval_batch_size or cfg.batch_size, shuffle=False,
                                      seed=cfg.seed, num_workers=cfg.num_workers, collate=collate)
        return evaluate(self.model, self.task, loader, self.assembly.metrics, self.strategy, autocast=self.amp,
                        channels_last=cfg.channels_last)

    # -- the end ------------------------------------------------------------------------------------

    def finish(self, status: str, stop: _StopFlag) -> dict[str, Any]:
        """Checkpoint, export the model (unless interrupted), write the summary, call ``on_run_end``."""
        if status != "completed":  # every process must agree: saving the model may be a collective
            status = self.strategy.broadcast_object(status)
        self.save_checkpoint()  # also when one was just written: evaluation may have followed it
        summary = self.summary(status, stop)
        if status != "interrupted":
            self._export_model()
        if self.strategy.is_main:
            self.rd.write_json("summary.json", summary)
            self._set_status(status)
        self.host.pm.hook.on_run_end(run=self.ctx, status=status, summary=summary)
        return summary

    def summary(self, status: str, stop: _StopFlag) -> dict[str, Any]:
        """What ``summary.json`` holds for a run that ended with ``status``."""
        state, built = self.state, self.assembly
        summary = {
            "status": status,
            "steps": state.step,
            "epochs": state.epoch,
            "total_steps": self.total_steps,
            "final": state.last_eval,
            "best": {"metric": built.monitor, "mode": built.mode, "value": state.best, "step": state.best_step},
            "wall_time_s": time.perf_counter() - self.started,
            "train_samples_per_s": state.samples / state.train_time if state.train_time else None,
            "run_dir": str(self.rd.path),
            "has_validation": self.data.validation is not None,
        }
        if status == "stopped":
            summary["stop_reason"] = self.ctx.stop_reason
        if status == "interrupted":
            summary["signal"] = signal.Signals(stop.signum).name if stop.signum else None
        return summary

    def _export_model(self) -> None:
        state_dict = self.strategy.model_state(self.model)
        if not self.strategy.is_main:
            return
        parts, cfg = self.parts, self.cfg
        save_model(self.rd.model_dir, state_dict, {
            "arch": parts.arch.qualified_name, "model_kwargs": self.assembly.model_kwargs, "task": parts.task.name,
            "dataset": parts.dataset.qualified_name, "data": cfg.data, "data_info": _jsonable(self.data.info),
            "metrics": [m.qualified_name for m in parts.metrics],
        })

    def _set_status(self, status: str) -> None:
        config = self.rd.read_json("config.json")
        config["status"] = status
        self.rd.write_json("config.json", config)
        _index(self.rd)

    def _fail(self, exc: BaseException) -> None:
        """Record a run that raised, and let lifecycle hooks close what they opened."""
        summary = {"status": "failed", "error": f"{type(exc).__name__}: {exc}", "run_dir": str(self.rd.path)}
        if self.strategy.is_main:
            self.rd.write_json("summary.json", summary)
            self._set_status("failed")
        self.host.pm.hook.on_run_end(run=self.ctx, status="failed", summary=summary)


def train(config: RunConfig | None = None, *, host: PluginHost | None = None,
          resume: str | Path | None = None, quiet: bool | None = None) -> dict[str, Any]:
    """Run one training job; see :class:`Trainer`."""
    return Trainer(config, host=host, resume=resume, quiet=quiet).run()


def _saved_config(path: Path) -> RunConfig:
    """The config of the run in ``path``, refusing a run that has nothing left to do."""
    rd = RunDir(path)
    if not rd.exists():
        raise FileNotFoundError(f"{path} is not a run directory (no config.json); pass the folder `bestiary train` created")
    done = rd.read_json("summary.json").get("status") if (rd.path / "summary.json").exists() else None
    if done in ("completed", "stopped"):
        raise ConfigError(f"run {rd.path} already {done}; there is nothing to resume. Start a new run, "
                          "or evaluate this one with `bestiary evaluate`")
    return RunConfig.from_dict(rd.read_json("config.json")["config"])


def _hparams(cfg: RunConfig, parts: Parts) -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in cfg.to_dict().items():
        if isinstance(value, dict):
            flat.update({f"{key}.{k}": v for k, v in value.items() if isinstance(v, (int, float, str, bool))})
        elif isinstance(value, (int, float, str, bool)) and key not in ("run_dir", "runs_root", "quiet"):
            flat[key] = value
    if cfg.lr is None:
        flat["lr"] = DEFAULT_LR[cfg.optimizer]
    flat["task"] = parts.task.name
    return flat


def _jsonable(info: Any) -> dict[str, Any]:
    import json

    return json.loads(json.dumps(dict(info), default=str))


def _index(rd: RunDir) -> None:
    from .index import RunsIndex

    RunsIndex(rd.path.parent).record(rd.path)
