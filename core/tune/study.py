"""The tuner: an optuna study whose every trial is one bestiary run.

Trials are asked for and told by hand (not through ``Study.optimize``) so that each tuner can
recover the trials of dead tuners before asking (see :mod:`bestiary.tune.storage`) and so that
``trials`` counts finished trials of the whole study, whichever process ran them: running the same
command again after a crash finishes the study instead of starting it over.
"""

from __future__ import annotations

import difflib
import logging
import re
import threading
import time
import warnings
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ConfigError, TaskMismatchError
from ..host import PluginHost, get_host
from ..registry import LookupFailure
from ..registry.direction import metric_direction
from ..registry.space import SearchSpace
from .space import apply_params, space_of, suggest
from .storage import HEARTBEAT_S, Leases, open_storage, requeue
from .trial import LATENCY, Objective, run_trial

log = logging.getLogger("bestiary")

SAMPLERS = ("tpe", "random", "grid", "cmaes", "nsga2")
PRUNERS = ("median", "hyperband", "halving", "none")
DIRECTIONS = {"max": "maximize", "min": "minimize", "maximize": "maximize", "minimize": "minimize"}


def make_sampler(name: str, space: SearchSpace, *, seed: int | None, multi: bool) -> Any:
    """The optuna sampler called ``name`` (one of :data:`SAMPLERS`)."""
    import optuna

    _choice("sampler", name, SAMPLERS)
    if name == "tpe":
        return optuna.samplers.TPESampler(seed=seed)
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if name == "nsga2":
        return optuna.samplers.NSGAIISampler(seed=seed)
    if name == "grid":  # the grid is queued as trials (see Tuner): each point once, whichever tuner runs it
        if not space:
            raise ConfigError("--sampler grid needs a search space; give one with --space FILE.toml")
        return optuna.samplers.RandomSampler(seed=seed)
    if multi:
        raise ConfigError("--sampler cmaes optimises one objective; use tpe or nsga2 for several metrics")
    try:
        import cmaes  # noqa: F401  (optuna's CMA-ES sampler needs it)
    except ImportError as exc:
        raise ConfigError("--sampler cmaes needs the cmaes package: pip install cmaes (or use --sampler tpe)") from exc
    return optuna.samplers.CmaEsSampler(seed=seed, warn_independent_sampling=False)


def make_pruner(name: str, *, max_epochs: int) -> Any:
    """The optuna pruner called ``name``; steps are validation rounds (epochs by default)."""
    import optuna

    _choice("pruner", name, PRUNERS)
    if name == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=4, n_warmup_steps=1)
    if name == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=1, max_resource=max(max_epochs, 1), reduction_factor=3)
    if name == "halving":
        return optuna.pruners.SuccessiveHalvingPruner(min_resource=1, reduction_factor=3)
    return optuna.pruners.NopPruner()


def _choice(what: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        close = difflib.get_close_matches(value, allowed, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ConfigError(f"unknown {what} {value!r}.{hint} Choose one of {', '.join(allowed)}")


def objectives_for(config: Any, metrics: list[str] | str | None, directions: list[str] | str | None,
                   host: PluginHost) -> list[Objective]:
    """The study's objectives: the named metrics (default: the task's monitor) with their
    directions (default: as each metric entry declares, see
    :func:`bestiary.registry.direction.metric_direction`; latency is minimised)."""
    from ..engine.run import resolve  # resolving entries imports torch

    parts = resolve(config, host)
    names = [metrics] if isinstance(metrics, str) else list(metrics or [])
    if not names:
        names = [config.monitor or parts.task.build().monitor]
    given = [directions] if isinstance(directions, str) else list(directions or [])
    if given and len(given) not in (1, len(names)):
        raise ConfigError(f"give one --direction, or one per --metric ({len(names)}), not {len(given)}")
    table = host.registry.table("metrics")
    out = []
    for i, name in enumerate(names):
        declared: str | None = "min"
        if name not in ("loss", LATENCY):
            entry = table.get(name)
            if entry.task is not None and entry.task != parts.task.name:
                raise TaskMismatchError(f"metric {name!r} is for {entry.task}, not {parts.task.name}; "
                                        f"see `bestiary list metrics --task {parts.task.name}`")
            declared = metric_direction(entry)
        if given:
            raw = given[i] if len(given) > 1 else given[0]
            if raw not in DIRECTIONS:
                raise ConfigError(f"--direction {raw!r}: use max or min")
            declared = raw
        if declared is None:
            raise ConfigError(f"metric {name!r} is no score to optimise (its entry declares no direction); "
                              "choose another --metric, or give --direction max|min")
        out.append(Objective(name, DIRECTIONS[declared]))
    if all(o.name == LATENCY for o in out):
        raise ConfigError(f"{LATENCY} needs a metric beside it to trade against, e.g. --metric accuracy --metric {LATENCY}")
    return out


def run_config(config: Any, objectives: list[Objective], host: PluginHost) -> Any:
    """The trials' base config: every objective metric reported, the first one monitored (so the
    run's best value and early stopping follow it)."""
    from ..engine.run import resolve  # resolving entries imports torch

    metric = next(o.name for o in objectives if o.name != LATENCY)
    direction = next(o.direction for o in objectives if o.name == metric)
    changes: dict[str, Any] = {"monitor": metric, "mode": "max" if direction == "maximize" else "min"}
    current = config.metrics if config.metrics is not None else list(resolve(config, host).task.build().default_metrics)
    missing = [o.name for o in objectives if o.name not in ("loss", LATENCY, *current)]
    if missing:
        changes["metrics"] = [*current, *missing]
    return config.replace(**changes)


def default_study_name(config: Any) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", f"{config.arch}-{config.dataset}")


@dataclass
class Tuner:
    """A study of one architecture on one dataset; :meth:`optimize` runs trials until the study
    holds ``trials`` finished ones (or ``timeout`` seconds passed).

    :param config: the base run config; every trial is it with the trial's parameters applied.
    :param objectives: from :func:`objectives_for`.
    :param space: the parameters searched (empty when ``configure`` chooses them).
    :param study_name: the study (continued when it exists).
    :param storage: optuna storage URL or journal path; default ``RUNS_ROOT/studies/NAME.journal``.
    :param sampler: one of :data:`SAMPLERS`.
    :param pruner: one of :data:`PRUNERS` (``none`` for several objectives).
    :param sampler_seed: seed of the sampler (default: unseeded, so concurrent tuners differ).
    :param heartbeat_s: seconds between heartbeats of running trials.
    :param host: plugin host.
    :param echo: called with one line per finished trial (the CLI prints it on stderr).
    :param configure: ``trial -> RunConfig`` replacing the default (the base config with the trial's
        suggestions for ``space`` applied); autopilot chooses the architecture there.
    """

    config: Any
    objectives: list[Objective]
    space: SearchSpace
    study_name: str
    storage: str | None = None
    sampler: str = "tpe"
    pruner: str = "median"
    sampler_seed: int | None = None
    heartbeat_s: float = HEARTBEAT_S
    host: PluginHost = field(default_factory=get_host)
    configure: Callable[[Any], Any] | None = None
    echo: Callable[[str], None] | None = None
    failures: list[str] = field(default_factory=list)
    interrupted: bool = False

    def __post_init__(self) -> None:
        import optuna

        multi = len(self.objectives) > 1
        if multi and self.pruner != "none":
            raise ConfigError("pruning needs a single objective; pass --pruner none with several metrics")
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        self.storage_target = self.storage or str(Path(self.config.runs_root) / "studies" / f"{self.study_name}.journal")
        storage = open_storage(self.storage, self.storage_target)
        directions: list[Any] = [o.direction for o in self.objectives]
        try:
            self.study = optuna.create_study(
                study_name=self.study_name, storage=storage, directions=directions, load_if_exists=True,
                sampler=make_sampler(self.sampler, self.space, seed=self.sampler_seed, multi=multi),
                pruner=make_pruner(self.pruner, max_epochs=self.config.epochs),
            )
        except ValueError as exc:  # an existing study with other directions
            raise ConfigError(f"study {self.study_name!r} in {self.storage_target}: {exc}; "
                              "choose another --study NAME for other objectives") from exc
        if [d.name.lower() for d in self.study.directions] != directions:
            raise ConfigError(f"study {self.study_name!r} in {self.storage_target} optimises "
                              f"{[d.name.lower() for d in self.study.directions]}, not {directions}; "
                              "choose another --study NAME for other objectives")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # metric names are experimental in optuna
            self.study.set_metric_names([o.name for o in self.objectives])
        if self.sampler == "grid":
            for point in self.space.grid_points():
                self.study.enqueue_trial(point, skip_if_exists=True)
        self.leases = Leases(self.study, self.heartbeat_s)
        self._stop = threading.Event()
        self._lock = threading.Lock()

    # -- the loop ------------------------------------------------------------------------------

    def optimize(self, trials: int | None = 20, *, timeout: float | None = None, n_jobs: int = 1,
                 deadline: float | None = None, measure: bool = False) -> None:
        """Run trials until the study holds ``trials`` complete or pruned ones, or time is up.

        :param trials: finished trials the study should hold (``None``: until ``timeout``).
        :param timeout: seconds after which no new trial starts.
        :param n_jobs: trials run at once in this process (threads).
        :param deadline: a ``time.time()`` at which running trials are stopped too (autopilot).
        :param measure: measure latency and parameters of every completed trial.
        """
        if trials is None and timeout is None and deadline is None:
            raise ConfigError("give --trials N or --timeout T, or the study never ends")
        if self.sampler == "grid" and trials is not None:
            trials = min(trials, self.space.grid_size())
        ends = [t for t in (time.time() + timeout if timeout else None, deadline) if t is not None]
        start_by = min(ends) if ends else None
        self._stop.clear()
        self.failures.clear()
        self.interrupted = False
        try:
            if n_jobs <= 1:
                self._worker(trials, start_by, deadline, measure)
            else:
                workers = [threading.Thread(target=self._worker, args=(trials, start_by, deadline, measure),
                                            name=f"bestiary-tune-{i}") for i in range(n_jobs)]
                for w in workers:
                    w.start()
                try:
                    for w in workers:
                        while w.is_alive():
                            w.join(0.5)
                except KeyboardInterrupt:
                    self._stop.set()  # running trials finish; no new ones start
                    self.interrupted = True
                    for w in workers:
                        w.join()
        finally:
            self.leases.close()

    def _enough(self, trials: int | None) -> bool:
        from optuna.trial import TrialState

        if trials is None:
            return False
        states = Counter(t.state for t in self.study.get_trials(deepcopy=False))
        done = states[TrialState.COMPLETE] + states[TrialState.PRUNED]
        return done >= trials or (done + states[TrialState.RUNNING] >= trials and not states[TrialState.WAITING])

    def _worker(self, trials: int | None, start_by: float | None, deadline: float | None, measure: bool) -> None:
        while not self._stop.is_set():
            with self._lock:  # one thread asks at a time, so the count of running trials is exact
                self.leases.recover()
                if (start_by is not None and time.time() >= start_by) or self._enough(trials):
                    return
                trial = self.study.ask()
                self.leases.acquire(trial)
            try:
                self._one(trial, deadline, measure)
            finally:
                self.leases.release(trial)
            if trials is not None and len(self.failures) >= max(3, trials):
                log.error("bestiary: stopping after %d failed trials", len(self.failures))
                return

    def _one(self, trial: Any, deadline: float | None, measure: bool) -> None:
        from optuna.trial import TrialState

        try:
            if self.configure is not None:
                config = self.configure(trial)
            else:
                config = apply_params(self.config, suggest(trial, self.space))
            outcome = run_trial(trial, config, self.objectives, host=self.host, report=len(self.objectives) == 1,
                                pruner=type(self.study.pruner).__name__, deadline=deadline, measure=measure,
                                max_evals=1 if trial.user_attrs.get("probe") else None,
                                prune=not trial.user_attrs.get("reference"))
        except (ConfigError, LookupFailure, TaskMismatchError):
            self.study.tell(trial, state=TrialState.FAIL)
            self._stop.set()
            raise  # the setup is wrong, not the trial: every trial would fail the same way
        except Exception as exc:  # noqa: BLE001  (any error of one trial is recorded on it; the study goes on)
            message = f"{type(exc).__name__}: {exc}"
            trial.set_user_attr("error", message)
            self.study.tell(trial, state=TrialState.FAIL)
            self.failures.append(f"trial {trial.number}: {message}")
            log.warning("bestiary: trial %d failed: %s", trial.number, message)
            self._say(trial, "failed", message)
            return
        for key, value in outcome.extra.items():
            if key != "final":
                trial.set_user_attr(key, value)
        trial.set_user_attr("metrics", outcome.extra.get("final", {}))
        if outcome.state == "interrupted":
            self.study.tell(trial, state=TrialState.FAIL)
            requeue(self.study, self.study._storage.get_trial(trial._trial_id))  # rerunning continues it
            self.interrupted = True
            self._stop.set()
        elif outcome.state == "pruned":
            self.study.tell(trial, state=TrialState.PRUNED)
        else:
            self.study.tell(trial, outcome.values)
        values = ", ".join(f"{o.name} {v:.4g}" for o, v in zip(self.objectives, outcome.values or []))
        self._say(trial, outcome.state, values or outcome.extra.get("stop_reason", ""), outcome)

    def _say(self, trial: Any, state: str, detail: str, outcome: Any = None) -> None:
        if self.echo is None:
            return
        params = ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in trial.params.items())
        took = f", {outcome.summary.get('wall_time_s', 0):.1f} s" if outcome is not None else ""
        self.echo(f"trial {trial.number} {state}: {detail} ({params}{took})")


def make_tuner(arch: str, dataset: str | None = None, *, config: Any = None, metric: list[str] | str | None = None,
               direction: list[str] | str | None = None, space: str | Path | None = None, study: str | None = None,
               storage: str | None = None, sampler: str = "tpe", pruner: str | None = None,
               sampler_seed: int | None = None, heartbeat_s: float = HEARTBEAT_S, host: PluginHost | None = None,
               echo: Callable[[str], None] | None = None, **fields: Any) -> Tuner:
    """A :class:`Tuner` from names and run-config fields (see :func:`bestiary.tune.tune`)."""
    from ..engine.config import RunConfig

    host = host or get_host()
    if config is None:
        fields.setdefault("quiet", True)
        config = RunConfig.from_dict({"arch": arch, "dataset": dataset, **fields})
    elif fields or dataset:
        config = config.replace(**fields, **({"dataset": dataset} if dataset else {}))
    if config.run_dir:
        raise ConfigError("every trial gets its own run directory under --runs-root; drop --run-dir")
    entry = host.registry.table("architectures").get(config.arch)
    objectives = objectives_for(config, metric, direction, host)
    config = run_config(config, objectives, host)
    searched = space_of(entry, space)
    if pruner is None:
        pruner = "median" if len(objectives) == 1 else "none"
    return Tuner(config, objectives, searched, study or default_study_name(config), storage, sampler, pruner,
                 sampler_seed, heartbeat_s, host, echo=echo)
