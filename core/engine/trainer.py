"""The training loop every caller shares: ``bestiary train``, the tuner, the benchmark runner.

Exact resume: the data order is a function of ``(seed, epoch)``, checkpoints hold every RNG state
and the position in the epoch, and they are written only between optimizer steps, so a run killed
at any point and resumed from its last checkpoint replays the same steps bit for bit on the CPU.
"""

from __future__ import annotations

import contextlib
import math
import random
import signal
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch  # the trainer runs torch; `import bestiary` never imports this module

from ..errors import ConfigError
from ..host import PluginHost, get_host
from .artifact import save_model
from .config import RunConfig
from .data import batches_per_epoch, set_epoch
from .evaluate import evaluate
from .metrics import monitor_mode
from .optim import DEFAULT_LR, build_optimizer, build_scheduler
from .progress import Progress
from .run import Parts, RunContext, architecture_kwargs, autocast, build_data, build_metrics, resolve
from .rundir import RunDir, environment, new_run_dir
from .weights import load_weights


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def rng_state() -> dict[str, Any]:
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    state = {
        "python": random.getstate(),
        "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, gauss],
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    kind, keys, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, gauss))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


class _StopFlag:
    """Set by SIGTERM or SIGINT (Ctrl-C): the loop saves a checkpoint at the next step boundary
    and returns; a second Ctrl-C interrupts at once."""

    SIGNALS = (signal.SIGTERM, signal.SIGINT)

    def __init__(self) -> None:
        self.set = False
        self.signum: int | None = None
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> _StopFlag:
        if threading.current_thread() is threading.main_thread():
            for sig in self.SIGNALS:
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        if self.set and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.set, self.signum = True, signum

    def __exit__(self, *exc: Any) -> None:
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
            rd = RunDir(self.resume_dir)
            if not rd.exists():
                raise FileNotFoundError(f"{self.resume_dir} is not a run directory (no config.json); pass the folder `bestiary train` created")
            config = RunConfig.from_dict(rd.read_json("config.json")["config"])
            done = rd.read_json("summary.json").get("status") if (rd.path / "summary.json").exists() else None
            if done in ("completed", "stopped"):
                raise ConfigError(f"run {rd.path} already {done}; there is nothing to resume. Start a new run, "
                                  "or evaluate this one with `bestiary evaluate`")
        if config is None:
            raise ValueError("give a config or a run directory to resume")
        self.cfg = config if quiet is None else config.replace(quiet=quiet)
        self.parts: Parts = resolve(config, self.host)
        self.rules = _rules(self.cfg, self.host)  # bad rule names fail before anything is built

    def run(self) -> dict[str, Any]:
        """Train, evaluate and export; return the summary (also written to ``summary.json``)."""
        task = self.parts.task.build()
        strategy = self.parts.strategy.build(**self.cfg.strategy_options)
        strategy.setup(self.cfg.device)
        autocast(self.cfg.precision, strategy.device)  # refuse an impossible precision before building anything
        try:
            return self._run(task, strategy)
        finally:
            strategy.teardown()

    def _run(self, task: Any, strategy: Any) -> dict[str, Any]:
        cfg, parts, hook = self.cfg, self.parts, self.host.pm.hook
        seed_everything(cfg.seed)
        if cfg.deterministic:
            torch.use_deterministic_algorithms(True, warn_only=True)
            torch.backends.cudnn.benchmark = False
        data = build_data(parts.dataset, cfg.data)
        model_kwargs = architecture_kwargs(parts.arch, task.model_kwargs(data.info), cfg.model)
        model = parts.arch.build(**model_kwargs)
        if hasattr(task, "prepare_data"):  # a task may cut its data for the built model (series windows)
            data = task.prepare_data(data, model, batch_size=cfg.batch_size, seed=cfg.seed)
        if cfg.weights:
            load_weights(model, cfg.weights)
        model = strategy.prepare_model(model, channels_last=cfg.channels_last)
        optimizer = build_optimizer(model, cfg)
        train_set = data.split("train")
        per_epoch = batches_per_epoch(len(train_set), cfg.batch_size, strategy.topology.dp_size)
        steps_per_epoch = math.ceil(per_epoch / cfg.accumulate)
        total_steps = steps_per_epoch * cfg.epochs
        if cfg.max_steps is not None:
            total_steps = min(total_steps, cfg.max_steps)
        scheduler = build_scheduler(optimizer, cfg, total_steps)
        amp = autocast(cfg.precision, strategy.device)
        scaler = torch.amp.GradScaler("cuda") if cfg.precision == "fp16" else None
        forward_model = torch.compile(model) if cfg.compile else model
        metrics = build_metrics(parts.metrics)
        monitor = cfg.monitor or task.monitor
        if monitor != "loss" and monitor not in metrics:
            raise ConfigError(f"monitor {monitor!r} is not among the run's metrics ({', '.join(['loss', *metrics])}); "
                              "choose one with --monitor NAME, or add it with --metric NAME")
        mode = cfg.mode if cfg.mode is not None else monitor_mode(monitor, parts.metrics)
        validation = data.validation

        # -- run directory and resume --------------------------------------------------------
        if self.resume_dir is not None:
            path = self.resume_dir
        elif strategy.is_main:
            path = Path(cfg.run_dir) if cfg.run_dir else new_run_dir(cfg.runs_root, parts.arch.name, parts.dataset.name)
            if RunDir(path).exists():
                raise ConfigError(f"run directory {path} already holds a run; continue it with "
                                  f"`bestiary train --resume {path}` or choose another --run-dir")
            path.mkdir(parents=True, exist_ok=True)
        else:
            path = None
        path = Path(strategy.broadcast_object(str(path) if path else None))
        rd = RunDir(path)
        state: dict[str, Any] = {"step": 0, "epoch": 0, "batch_in_epoch": 0, "best": None, "best_step": None,
                                 "bad_evals": 0, "samples": 0, "train_time": 0.0, "last_eval": {}}
        checkpoint = rd.latest_checkpoint() if self.resume_dir is not None else None
        if checkpoint is not None:
            extra = strategy.load_checkpoint(checkpoint, model, optimizer)
            scheduler.load_state_dict(extra["scheduler"])
            if scaler is not None and extra.get("scaler"):
                scaler.load_state_dict(extra["scaler"])
            state.update(extra["state"])
            set_rng_state(extra["rng"])
        resumed_step = state["step"]
        hparams = _hparams(cfg, parts)
        if strategy.is_main:
            if self.resume_dir is not None:
                rd.truncate_metrics(resumed_step)
            rd.write_json("config.json", {"config": cfg.to_dict(), "resolved": {
                "arch": parts.arch.qualified_name, "dataset": parts.dataset.qualified_name,
                "strategy": parts.strategy.qualified_name, "task": parts.task.name,
                "metrics": [m.qualified_name for m in parts.metrics], "model_kwargs": model_kwargs,
                "monitor": monitor, "mode": mode, "total_steps": total_steps, "world_size": strategy.world_size,
                "topology": strategy.topology.as_dict(),
            }, "environment": environment([p.to_dict() for p in self.host.plugins]), "status": "running"})
            _index(rd)
        ctx = RunContext(cfg, path, strategy, model, task, hparams, resumed_step)
        debugger = _debugger(ctx, self.host, self.rules, train_set, data.info, total_steps)
        hook.on_run_start(run=ctx)
        try:

            def save_checkpoint() -> None:
                target = rd.checkpoint_path(state["step"])
                extra = {"state": dict(state), "rng": rng_state(), "scheduler": scheduler.state_dict(),
                         "scaler": scaler.state_dict() if scaler is not None else None}
                strategy.save_checkpoint(target, model, optimizer, extra)
                if strategy.is_main:
                    rd.prune_checkpoints(cfg.keep_checkpoints)
                hook.on_checkpoint_saved(run=ctx, step=state["step"], path=target)

            def loss_fn(m: torch.nn.Module, batch: Any) -> tuple[torch.Tensor, Any]:
                return task.loss(m, batch, label_smoothing=cfg.label_smoothing)

            progress = Progress(total_steps, enabled=not cfg.quiet and strategy.is_main, start_step=resumed_step)
            status = "completed"
            window_loss, window_n, window_start = torch.zeros((), device=strategy.device), 0, time.perf_counter()
            last_norm = None
            started = time.perf_counter()
            model.train()
            with _StopFlag() as stop:
                loader = strategy.loader(train_set, batch_size=cfg.batch_size, shuffle=True, seed=cfg.seed,
                                         epoch=state["epoch"], skip_batches=state["batch_in_epoch"],
                                         num_workers=cfg.num_workers, collate=data.train_collate or data.collate)
                while state["epoch"] < cfg.epochs and state["step"] < total_steps and status == "completed":
                    set_epoch(loader, state["epoch"], state["batch_in_epoch"])
                    micro = 0
                    for batch in loader if debugger is None else debugger.timed(loader):
                        batch = task.to_device(batch, strategy.device, cfg.channels_last)
                        boundary = micro + 1 == cfg.accumulate or state["batch_in_epoch"] + 1 == per_epoch
                        with contextlib.nullcontext() if boundary else strategy.no_sync(model):
                            loss, _ = strategy.forward_backward(forward_model, batch, loss_fn, autocast=amp,
                                                                scale=1.0 / cfg.accumulate, scaler=scaler,
                                                                split=task.split_batch)
                        n = task.batch_size(batch)
                        window_loss.add_(loss, alpha=n)
                        window_n += n
                        micro += 1
                        state["batch_in_epoch"] += 1
                        if not boundary:
                            continue
                        micro = 0
                        if debugger is not None:
                            debugger.after_backward(loss)
                        last_norm = strategy.optimizer_step(model, optimizer, scaler=scaler, clip_grad_norm=cfg.clip_grad_norm)
                        scheduler.step()
                        state["step"] += 1
                        if debugger is not None:
                            debugger.after_step()
                        step = state["step"]
                        if step % cfg.log_every == 0 or step == total_steps:
                            now = time.perf_counter()
                            samples = window_n * strategy.topology.dp_size  # data-parallel replicas read different samples
                            record = {"loss": float(window_loss) / max(window_n, 1), "lr": scheduler.get_last_lr()[0],
                                      "samples_per_s": samples / max(now - window_start, 1e-9)}
                            if last_norm is not None:
                                record["grad_norm"] = float(last_norm)
                            state["samples"] += samples
                            state["train_time"] += now - window_start
                            if strategy.is_main:
                                rd.log({"step": step, "epoch": state["epoch"], "split": "train", **record, "time": time.time()})
                            hook.on_step_end(run=ctx, step=step, metrics=record)
                            progress.update(step, state["epoch"], record["loss"], record["samples_per_s"])
                            window_loss.zero_()
                            window_n, window_start = 0, time.perf_counter()
                        if cfg.checkpoint_every and step % cfg.checkpoint_every == 0:
                            save_checkpoint()
                        if strategy.agree(stop.set or ctx.stop_reason is not None):  # one collective per step
                            status = "interrupted" if stop.set or ctx.stop_reason is None else "stopped"
                            break
                        if step >= total_steps:
                            break
                    if status != "completed":
                        break
                    if state["batch_in_epoch"] >= per_epoch:
                        state["epoch"] += 1
                        state["batch_in_epoch"] = 0
                    last_epoch = state["epoch"] >= cfg.epochs or state["step"] >= total_steps
                    if validation is not None and (state["epoch"] % cfg.eval_every == 0 or last_epoch):
                        results = self._evaluate(model, task, validation, metrics, strategy, amp, data.collate)
                        state["last_eval"] = results
                        if strategy.is_main:
                            rd.log({"step": state["step"], "epoch": state["epoch"], "split": "validation", **results, "time": time.time()})
                        hook.on_evaluation_end(run=ctx, step=state["step"], split="validation", metrics=results)
                        value = results[monitor]
                        better = state["best"] is None or (value > state["best"] if mode == "max" else value < state["best"])
                        if better:
                            state["best"], state["best_step"], state["bad_evals"] = value, state["step"], 0
                        else:
                            state["bad_evals"] += 1
                            if cfg.early_stopping is not None and state["bad_evals"] >= cfg.early_stopping:
                                status = "stopped"
                                ctx.request_stop(f"{monitor} did not improve for {cfg.early_stopping} evaluations")
                        if strategy.agree(ctx.stop_reason is not None):
                            status = "stopped"
            progress.close()
            if status != "completed":  # every process must agree: saving the model may be a collective
                status = strategy.broadcast_object(status)
            save_checkpoint()  # also when one was just written: evaluation may have followed it
            summary = {
                "status": status,
                "steps": state["step"],
                "epochs": state["epoch"],
                "total_steps": total_steps,
                "final": state["last_eval"],
                "best": {"metric": monitor, "mode": mode, "value": state["best"], "step": state["best_step"]},
                "wall_time_s": time.perf_counter() - started,
                "train_samples_per_s": state["samples"] / state["train_time"] if state["train_time"] else None,
                "run_dir": str(path),
            }
            if status == "stopped":
                summary["stop_reason"] = ctx.stop_reason
            if status == "interrupted":
                summary["signal"] = signal.Signals(stop.signum).name if stop.signum else None
            if status != "interrupted":
                state_dict = strategy.model_state(model)
                if strategy.is_main:
                    save_model(rd.model_dir, state_dict, {
                        "arch": parts.arch.qualified_name, "model_kwargs": model_kwargs, "task": parts.task.name,
                        "dataset": parts.dataset.qualified_name, "data": cfg.data, "data_info": _jsonable(data.info),
                        "metrics": [m.qualified_name for m in parts.metrics],
                    })
            if strategy.is_main:
                rd.write_json("summary.json", summary)
                config = rd.read_json("config.json")
                config["status"] = status
                rd.write_json("config.json", config)
                _index(rd)
            hook.on_run_end(run=ctx, status=status, summary=summary)
            return summary
        except BaseException as exc:
            self._fail(rd, ctx, strategy, exc)
            raise

    def _fail(self, rd: RunDir, ctx: RunContext, strategy: Any, exc: BaseException) -> None:
        """Record a run that raised, and let lifecycle hooks close what they opened."""
        summary = {"status": "failed", "error": f"{type(exc).__name__}: {exc}", "run_dir": str(rd.path)}
        if strategy.is_main:
            rd.write_json("summary.json", summary)
            config = rd.read_json("config.json")
            config["status"] = "failed"
            rd.write_json("config.json", config)
            _index(rd)
        self.host.pm.hook.on_run_end(run=ctx, status="failed", summary=summary)

    def _evaluate(self, model: Any, task: Any, dataset: Any, metrics: Any, strategy: Any, amp: Any,
                  collate: Any) -> dict[str, float]:
        loader = strategy.loader(dataset, batch_size=self.cfg.eval_batch_size or self.cfg.batch_size,
                                 shuffle=False, seed=self.cfg.seed, num_workers=self.cfg.num_workers, collate=collate)
        return evaluate(model, task, loader, metrics, strategy, autocast=amp, channels_last=self.cfg.channels_last)


def train(config: RunConfig | None = None, *, host: PluginHost | None = None,
          resume: str | Path | None = None, quiet: bool | None = None) -> dict[str, Any]:
    """Run one training job; see :class:`Trainer`."""
    return Trainer(config, host=host, resume=resume, quiet=quiet).run()


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


def _rules(cfg: RunConfig, host: PluginHost) -> list[Any]:
    if cfg.rules is None:
        return []
    from ..debug.rule import select_rules

    return select_rules(cfg.rules, host, cfg.rule_options)


def _debugger(ctx: RunContext, host: PluginHost, rules: list[Any], train_set: Any, info: Any,
              total_steps: int) -> Any:
    if not rules:
        return None
    from ..debug.session import start_debugger

    return start_debugger(ctx, host, rules, train_set=train_set, info=info, total_steps=total_steps)


def _jsonable(info: Any) -> dict[str, Any]:
    import json

    return json.loads(json.dumps(dict(info), default=str))


def _index(rd: RunDir) -> None:
    from .index import RunsIndex

    RunsIndex(rd.path.parent).record(rd.path)
