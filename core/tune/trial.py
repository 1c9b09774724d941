"""One trial = one ordinary bestiary run, through :func:`bestiary.engine.trainer.train`.

The tuner watches its runs through lifecycle hooks: after each validation it reports the monitored
metric to the trial, and when the pruner says so it asks the run to stop (the run ends ``stopped``
with a checkpoint and a model, like any early stop). A deadline (autopilot's time budget) stops a
run the same way.
"""

from __future__ import annotations

import statistics
import threading
import time
import weakref
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..hookspecs import hookimpl
from ..host import PluginHost

#: The objective measured after training rather than read from the run's metrics.
LATENCY = "latency_ms"


@dataclass(frozen=True)
class Objective:
    """One value a study optimises: a metric of the run (or :data:`LATENCY`) and its direction."""

    name: str
    direction: str  # "maximize" or "minimize"


@dataclass
class Watch:
    """What the monitor does for one run."""

    trial: Any | None  # the optuna trial to report to (None: do not report or prune)
    metric: str
    pruner: str = "pruner"
    deadline: float | None = None
    max_evals: int | None = None
    prune: bool = True
    evals: int = 0
    pruned: str | None = None
    out_of_time: bool = False


class TrialMonitor:
    """Lifecycle-hook plugin of the tuner, registered once per host (the host keeps every plugin it
    loaded, so one dispatcher serves all trials, including trials of several threads)."""

    def __init__(self) -> None:
        self._watches: dict[str, Watch] = {}
        self._lock = threading.Lock()

    def watch(self, run_dir: Path, watch: Watch) -> None:
        with self._lock:
            self._watches[str(Path(run_dir).resolve())] = watch

    def unwatch(self, run_dir: Path) -> None:
        with self._lock:
            self._watches.pop(str(Path(run_dir).resolve()), None)

    def _get(self, run: Any) -> Watch | None:
        with self._lock:
            return self._watches.get(str(Path(run.path).resolve()))

    @hookimpl
    def on_run_start(self, run: Any) -> None:
        w = self._get(run)
        if w is not None and run.resumed_step:  # a continued run: count the evaluations it kept
            from ..engine.rundir import RunDir

            w.evals = sum(1 for r in RunDir(run.path).metrics() if r.get("split") == "validation")

    @hookimpl
    def on_batch_end(self, run: Any, step: int, loss: Any, stepped: bool) -> None:
        # every batch, not every log step: on a busy machine ten steps of a large model can take
        # minutes, and the budget must hold within one step
        w = self._get(run)
        if w is not None and w.deadline is not None and time.time() > w.deadline:
            w.out_of_time = True
            run.request_stop("time budget spent")

    @hookimpl
    def on_evaluation_end(self, run: Any, step: int, split: str, metrics: dict[str, float]) -> None:
        w = self._get(run)
        if w is None or split != "validation":
            return
        w.evals += 1
        if w.trial is None or not run.is_main or w.metric not in metrics:
            return
        w.trial.report(float(metrics[w.metric]), w.evals)
        if w.max_evals is not None and w.evals >= w.max_evals:
            w.pruned = f"pruned by successive halving: a first look of {w.evals} evaluation(s)"
            run.request_stop(w.pruned)
        elif w.prune and w.trial.should_prune():
            w.pruned = f"pruned by {w.pruner} after {w.evals} evaluation(s)"
            run.request_stop(w.pruned)
        if w.deadline is not None and time.time() > w.deadline:
            w.out_of_time = True
            run.request_stop("time budget spent")


_monitors: weakref.WeakKeyDictionary[PluginHost, TrialMonitor] = weakref.WeakKeyDictionary()
_monitors_lock = threading.Lock()


def monitor_for(host: PluginHost) -> TrialMonitor:
    """The host's trial monitor, registered on first use."""
    with _monitors_lock:
        monitor = _monitors.get(host)
        if monitor is None:
            monitor = TrialMonitor()
            info = host.add_plugin(monitor, "tune")
            if info.status != "ok":  # e.g. a plugin of that name: pruning would silently do nothing
                raise RuntimeError(f"cannot watch trials: the tuner's hook plugin failed to load: {info.error}")
            _monitors[host] = monitor
        return monitor


@dataclass
class Outcome:
    """How a trial's run ended."""

    state: str  # "complete", "pruned" or "interrupted"
    values: list[float] | None
    summary: dict[str, Any]
    run_dir: Path
    extra: dict[str, Any] = field(default_factory=dict)


def run_trial(trial: Any, config: Any, objectives: list[Objective], *, host: PluginHost, report: bool = True,
              pruner: str = "pruner", deadline: float | None = None, measure: bool = False,
              max_evals: int | None = None, prune: bool = True) -> Outcome:
    """Train the run of ``trial`` (``config`` with its parameters applied) and read its values.

    A trial that retries an interrupted one continues the interrupted run directory from its last
    checkpoint (or takes the finished run's result when only the tuner died).

    :param trial: the optuna trial (its user attribute ``run_dir`` names a run to continue).
    :param config: the run config with the trial's parameters applied.
    :param objectives: the values to return, in order.
    :param host: the plugin host.
    :param report: report the first objective after each validation and prune (single objective).
    :param pruner: the pruner's name, for the stop reason.
    :param deadline: a ``time.time()`` after which the run is stopped.
    :param measure: also measure inference latency and parameters (always done for :data:`LATENCY`).
    :param max_evals: stop the run (as pruned) after this many validations: a first look at a
        candidate (autopilot's lowest rung).
    :param prune: let the study's pruner stop the run (off for reference trials, which only report).
    """
    from ..engine.rundir import RunDir, new_run_dir
    from ..engine.trainer import Trainer

    began = time.perf_counter()  # the run's share of the trial, for the tuner's overhead
    previous = trial.user_attrs.get("run_dir")
    rd = RunDir(previous) if previous else None
    summary: dict[str, Any] | None = None
    if rd is not None and rd.exists() and (rd.path / "summary.json").exists():
        done = rd.read_json("summary.json")
        if done.get("status") in ("completed", "stopped"):
            summary = done
    metric = next((o.name for o in objectives if o.name != LATENCY), None)
    watch = Watch(trial if report and metric else None, metric or "", pruner, deadline, max_evals, prune)
    if summary is None:
        if rd is not None and rd.exists():
            trainer = Trainer(resume=rd.path, host=host, quiet=config.quiet)
        else:
            path = Path(config.run_dir) if config.run_dir else new_run_dir(config.runs_root, config.arch, config.dataset)
            config = config.replace(run_dir=str(path))
            rd = RunDir(path)
            trial.set_user_attr("run_dir", str(path))
            trainer = Trainer(config, host=host)
        monitor = monitor_for(host)
        monitor.watch(rd.path, watch)
        try:
            summary = trainer.run()
        finally:
            monitor.unwatch(rd.path)
        trial.set_user_attr("train_call_s", time.perf_counter() - began)
    assert rd is not None
    if summary["status"] == "interrupted":
        return Outcome("interrupted", None, summary, rd.path)
    extra: dict[str, Any] = {"wall_time_s": summary.get("wall_time_s"), "status": summary["status"],
                             "final": summary.get("final", {})}
    stop = summary.get("stop_reason") or ""
    if watch.pruned or stop.startswith("pruned by") or watch.out_of_time or stop == "time budget spent":
        extra["stop_reason"] = stop
        return Outcome("pruned", None, summary, rd.path, extra)
    if measure or any(o.name == LATENCY for o in objectives):
        extra.update(measure_model(rd.path, device=config.device))
    values = []
    for o in objectives:
        if o.name == LATENCY:
            values.append(extra["latency_ms"])
            continue
        final = summary.get("final", {})
        if o.name not in final:
            raise ConfigError(f"run {rd.path} reported no {o.name!r} on its validation split (it has: "
                             f"{', '.join(final) or 'no validation split'}); pick a dataset with a validation split")
        values.append(float(final[o.name]))
    return Outcome("complete", values, summary, rd.path, extra)


def measure_model(run_dir: str | Path, *, device: str = "auto", batch_size: int = 32, warmup: int = 3,
                  repeats: int = 10) -> dict[str, Any]:
    """Inference latency of a run's model on the current device, and its parameter count.

    The model is loaded from its artefact, as users load it, and predicts a fixed random batch
    shaped like the dataset's (the task's sample batch): ``warmup`` calls first, then the median of
    ``repeats`` timed calls (synchronised on CUDA).

    :return: ``latency_ms`` (per batch), ``latency_batch``, ``params``, ``device``.
    """
    # timing needs torch; only trials that measure import it here
    import torch

    from ..api import get_entry
    from ..engine.artifact import load_model, read_meta
    from ..engine.strategy import resolve_device

    dev = resolve_device(device)
    _, meta = read_meta(run_dir)
    task = get_entry("tasks", meta["task"]).build()
    model = load_model(run_dir, device=dev)
    params = sum(p.numel() for p in model.parameters())
    generator_state = torch.get_rng_state()
    torch.manual_seed(0)  # the same batch for every trial
    batch = task.to_device(task.sample_batch(meta.get("data_info", {}), batch_size), dev)
    torch.set_rng_state(generator_state)
    times = []
    with torch.inference_mode():
        for i in range(warmup + repeats):
            if dev.type == "cuda":
                torch.cuda.synchronize(dev)
            start = time.perf_counter()
            task.predict(model, batch)
            if dev.type == "cuda":
                torch.cuda.synchronize(dev)
            if i >= warmup:
                times.append(time.perf_counter() - start)
    return {"latency_ms": statistics.median(times) * 1e3, "latency_batch": batch_size, "params": params,
            "device": str(dev)}
