"""Autopilot: pick architectures for a dataset from the registry and tune them within a time budget.

The task comes from the dataset entry. Candidates are the architecture entries of that task from
every plugin, third-party ones included; entries whose ``metadata["min_world_size"]`` exceeds 1
(they need several processes) are left out. Twice as many as wanted are taken by their catalogue
cost (``metadata["gmacs"]``, else ``params_m``), then the cheapest by a measured training step on
inputs shaped like the dataset's (small images make convolutions far cheaper than the catalogue's
figures say, while a ViT keeps its token count). One optuna study chooses the architecture and its hyperparameters
(``ARCH/lr``, ...) per trial; each candidate is tried once first with the run defaults, and
optuna's successive-halving pruner stops weak trials after 1, 3, 9, ... epochs, so the budget goes
to the candidates that learn. The budget is cut into phases, printed as a plan at the start and
with the time each used at the end:

- timing and first looks, at most :data:`FIRST_LOOK_SHARE` of the budget: every candidate that
  fits gets one epoch with the run defaults (the lowest rung);
- references: best first, the candidates' defaults train in full, unpruned, as long as the epoch
  time their first look measured says they fit in 70 % of the time left (the best one may take
  90 %, with fewer epochs, at least one, when even that is short): slow starters (a neural
  forecaster against a seasonal baseline) get a fair run, they set the bar, and one candidate at
  least is trained to completion;
- search: the sampler proposes architectures and hyperparameters until the budget is spent, each
  trial stopped at 1, 3, 9, ... epochs unless it ranks in the top third there;
- report: :data:`REPORT_SHARE` of the budget for test evaluations and the files.

When no candidate completes within the budget, :class:`BudgetTooSmall` says how much budget the
timing measured that it needs: autopilot never ends without a model as if it had succeeded.

::

    OUT/
      leaderboard.csv / .json   per candidate: validation and test metric, training time,
                                parameters, inference latency, trials, config file
      configs/ARCH.toml         the candidate's best config: bestiary train --config FILE
      best_model/               the best model (bestiary.load_model("OUT/best_model"))
      study/                    the study's own report (trials, importances, plots)
"""

from __future__ import annotations

import json
import logging
import math
import time
from pathlib import Path
from typing import Any

from ..engine.torchrun import toml_string, toml_value
from ..errors import ConfigError, UserError
from ..host import PluginHost, get_host
from ..registry import Entry
from ..registry.space import SearchSpace
from .budget import parse_duration
from .space import apply_params, space_of, suggest
from .storage import HEARTBEAT_S
from .study import Tuner, objectives_for, run_config

log = logging.getLogger("bestiary")

#: Share of the time left after the first looks that the reference trials (defaults in full) may
#: take; the best candidate's alone may take more, and trains fewer epochs when even that is short.
REFERENCE_SHARE = 0.7
FIRST_REFERENCE_SHARE = 0.9
MIN_REFERENCE_EPOCHS = 3
#: Share of the budget kept for evaluating the best models and writing the report.
REPORT_SHARE = 0.08
#: Share of the budget that timing the candidates and their first looks may take: the rest is
#: kept to train at least one candidate to completion.
FIRST_LOOK_SHARE = 0.4
#: Share of the budget that timing the candidates may take (within the first looks' share).
TIMING_SHARE = 0.15
#: Sort key of candidates left untimed: after the timed ones, before those that failed to run.
UNTIMED = 1e12


def candidates(task: str, *, include: list[str] | None = None, exclude: list[str] | None = None,
               max_candidates: int | None = 5, host: PluginHost | None = None) -> list[Entry]:
    """Architecture entries for ``task``, cheapest first, without those needing several processes.

    :param task: the task name.
    :param include: fnmatch patterns to keep (bare or ``plugin:name``).
    :param exclude: fnmatch patterns to leave out.
    :param max_candidates: keep the cheapest this many (``None``: all).
    """
    table = (host or get_host()).registry.table("architectures")
    found = [e for e in table.select(include or None, exclude or None, task=task)
             if not (isinstance(e.metadata.get("min_world_size"), int) and e.metadata["min_world_size"] > 1)]
    if not found:
        shown = f" matching {include}" if include else ""
        raise ConfigError(f"no architecture for task {task!r}{shown} can run in one process; "
                          f"see `bestiary list architectures --task {task}`")

    def cost(e: Entry) -> float:
        for key in ("gmacs", "params_m"):
            value = e.metadata.get(key)
            if isinstance(value, (int, float)):
                return float(value) * (1.0 if key == "gmacs" else 0.1)
        return 0.0  # no figure: assume small (toy, naive baselines)

    ranked = sorted(found, key=lambda e: (cost(e), len(e.search_space), e.qualified_name))
    return ranked[:max_candidates] if max_candidates else ranked


def step_costs(pool: list[Entry], config: Any, host: PluginHost, found: dict[str, Any] | None = None,
               deadline: float | None = None) -> dict[str, float]:
    """Seconds of one training step (forward and backward of 8 samples shaped like the dataset's)
    per candidate, built as a run would build it: the catalogue's figures hold for the catalogue's
    input size, not for this dataset's. A candidate that fails to build costs infinity.

    :param found: when given, receives ``train_samples`` (the training split's size, when known),
        for estimating an epoch before any has run.
    :param deadline: a ``time.time()`` after which no further candidate is timed (the first one
        always is), counted from when the data is loaded; the untimed ones are left out of the
        result."""
    started = time.time()
    # measuring builds models: torch is imported here, after the cheap registry work
    import torch

    from ..engine.run import architecture_kwargs, build_data, resolve

    parts = resolve(config, host)
    task = parts.task.build()
    data = build_data(parts.dataset, config.data)
    info = data.info
    if found is not None:
        try:
            found["train_samples"] = len(data.train)  # map-style datasets have a length
        except TypeError:
            pass  # a stream without a length: no estimate before a first look
    costs: dict[str, float] = {}
    if deadline is not None:  # the share counts from here: loading the data is no candidate's cost
        deadline += time.time() - started
    for entry in pool:
        if deadline is not None and costs and time.time() > deadline:
            log.warning("bestiary: autopilot timed %d of %d candidates within its share of the budget; "
                        "the others follow in the catalogue's order", len(costs), len(pool))
            break
        try:
            model = entry.build(**architecture_kwargs(entry, task.model_kwargs(info), {}))
            batch = task.sample_batch(info, 8)
            times = []
            for _ in range(2):  # the first call pays one-off allocations
                start = time.perf_counter()
                loss, _ = task.loss(model, batch)
                loss.backward()
                times.append(time.perf_counter() - start)
            costs[entry.qualified_name] = times[-1]
        except Exception as exc:  # noqa: BLE001  (a candidate that cannot run here is simply not chosen)
            log.warning("bestiary: autopilot leaves %s out: %s: %s", entry.qualified_name, type(exc).__name__, exc)
            costs[entry.qualified_name] = math.inf
        finally:
            torch.manual_seed(config.seed)  # measuring must not shift the runs' random streams
    return costs


def default_point(config: Any, space: SearchSpace, entry: Entry | None = None) -> dict[str, Any]:
    """The values a run of ``config`` would use for the searched parameters, moved into each range
    (a first trial of a candidate with the usual settings).

    :param config: the candidate's run config.
    :param space: the candidate's search space.
    :param entry: the candidate's architecture entry: a ``model.*`` option the config's ``model``
        table leaves out is the entry's default, as the run would build it.
    """
    from ..engine.optim import DEFAULT_LR

    model_defaults = dict(entry.defaults) if entry is not None else {}
    point = {}
    for p in space.values():
        head, dot, option = p.name.partition(".")
        if not dot:
            value = getattr(config, p.name)
        elif head == "model":
            value = config.model.get(option, model_defaults.get(option))
        else:
            value = getattr(config, head).get(option)
        if p.name == "lr" and value is None:
            value = DEFAULT_LR[config.optimizer]
        cast = int if p.type == "int" else float
        if p.type == "categorical":
            point[p.name] = value if value in p.choices else p.choices[0]
        elif value is None:
            point[p.name] = cast(p.low)  # type: ignore[arg-type]  # ranges always have bounds
        else:
            point[p.name] = cast(min(max(value, p.low), p.high))
    return point


def run_autopilot(dataset: str, *, task: str = "auto", time_budget: str | float = "10m", metric: str | None = None,
                  out: str | Path | None = None, include: list[str] | None = None, exclude: list[str] | None = None,
                  max_candidates: int | None = 5, max_epochs: int = 9, study: str | None = None,
                  storage: str | None = None, sampler_seed: int | None = 0, n_jobs: int = 1,
                  heartbeat_s: float = HEARTBEAT_S, host: PluginHost | None = None, echo: Any = None,
                  **fields: Any) -> dict[str, Any]:
    """Choose and tune architectures for ``dataset`` within ``time_budget``.

    :param dataset: dataset name; its entry's task picks the candidates.
    :param task: ``auto`` (the dataset's task) or a task name.
    :param time_budget: the whole budget, e.g. ``"10m"`` or seconds.
    :param metric: validation metric to optimise (default: the task's monitored metric).
    :param out: results folder (default ``RUNS_ROOT/autopilot/DATASET``).
    :param include: architecture patterns to consider.
    :param exclude: architecture patterns to leave out.
    :param max_candidates: how many of the cheapest candidates to consider.
    :param max_epochs: epochs of a trial that no rung stops.
    :param study: study name (default ``autopilot-DATASET``); the same call continues it.
    :param storage: optuna storage (default: a journal file in ``out``).
    :param sampler_seed: seed of the TPE sampler.
    :param n_jobs: trials at once.
    :param host: plugin host.
    :param echo: a function called with one line per finished trial (e.g. ``print``).
    :param fields: run-config fields for every trial (``device="cpu"``, ``seed=1``).
    :return: ``leaderboard`` (one row per candidate, best first), ``best``, ``files``, ``phases``
        (seconds each phase used).
    :raises BudgetTooSmall: when no candidate was trained to completion (the report is written
        first); its message says how much budget the timing says is needed.
    """
    from ..engine.config import RunConfig

    clock = PhaseClock(time.time(), parse_duration(time_budget), echo)
    budget, started = clock.budget, clock.started
    host = host or get_host()
    entry = host.registry.table("datasets").get(dataset)
    if task == "auto":
        if entry.task is None:
            raise ConfigError(f"dataset {entry.name!r} declares no task; pass --task NAME (see `bestiary list tasks`)")
        task = entry.task
    elif entry.task is not None and entry.task != task:
        raise ConfigError(f"dataset {entry.name!r} is for {entry.task}, not {task}; drop --task or pass --task auto")
    pool = candidates(task, include=include, exclude=exclude, max_candidates=2 * max_candidates if max_candidates else None,
                      host=host)
    fields.setdefault("quiet", True)
    base = RunConfig.from_dict({"arch": pool[0].qualified_name, "dataset": dataset, "epochs": max_epochs, **fields})
    clock.begin("timing")
    measured: dict[str, Any] = {}
    costs = step_costs(pool, base, host, measured, deadline=started + budget * TIMING_SHARE)
    # timing cut short by its share: the catalogue's order for all (a partial measure would put the
    # timed ones first whatever they cost), leaving out only those that failed to run
    # timing cut short by its share: the timed ones by their measure, then the others in the
    # catalogue's order, then those that failed to run
    chosen = sorted(pool, key=lambda e: costs.get(e.qualified_name, UNTIMED))[:max_candidates]
    names = [e.qualified_name for e in chosen]
    objectives = objectives_for(base, metric, None, host)
    if len(objectives) != 1:
        raise ConfigError("autopilot optimises one metric")
    base = run_config(base, objectives, host)
    spaces = {e.qualified_name: space_of(e) for e in chosen}
    root = Path(base.runs_root)
    out = Path(out) if out else root / "autopilot" / entry.name
    study_name = study or f"autopilot-{entry.name}"

    def configure(trial: Any) -> Any:
        arch = trial.suggest_categorical("arch", names)
        config = base.replace(arch=arch, epochs=int(trial.user_attrs.get("epochs", base.epochs)))
        return apply_params(config, suggest(trial, spaces[arch], prefix=f"{arch}/"))

    tuner = Tuner(base, objectives, SearchSpace(), study_name, storage or str(out / "study.journal"), "tpe", "halving",
                  sampler_seed, heartbeat_s, host, configure=configure, echo=echo)
    points = {e.qualified_name: default_point(base.replace(arch=e.qualified_name), spaces[e.qualified_name], e)
              for e in chosen}
    clock.plan(len(costs), names, max_epochs)
    first_cost = costs.get(names[0], math.inf)
    clock.train_samples = measured.get("train_samples")
    if clock.train_samples and math.isfinite(first_cost):  # an epoch's guess before any ran
        clock.epoch_guess = first_cost * clock.train_samples / 8
    clock.begin("first looks")
    if not tuner.study.get_trials(deepcopy=False):  # a new study: a first look at every candidate
        for name, point in points.items():
            tuner.study.enqueue_trial(_params(name, point), user_attrs={"probe": True})
    deadline = started + budget * (1 - REPORT_SHARE)
    # the first looks stop at their share, so that time is left to train one candidate in full
    tuner.optimize(len(chosen), deadline=started + budget * FIRST_LOOK_SHARE, n_jobs=n_jobs, measure=True)
    trials = tuner.study.get_trials(deepcopy=False)
    if not tuner.interrupted and not any(t.user_attrs.get("probe") and t.state.name != "WAITING" for t in trials):
        # timing used the first looks' share: the cheapest candidate (first in the queue) gets its
        # look anyway, as nothing can be trained in full without one
        tuner.optimize(sum(t.state.name in ("COMPLETE", "PRUNED") for t in trials) + 1, deadline=deadline,
                       n_jobs=1, measure=True)
        trials = tuner.study.get_trials(deepcopy=False)
    clock.begin("references")
    if not tuner.interrupted and not any(not t.user_attrs.get("probe") for t in trials):
        queued = _queue_references(tuner, trials, points, objectives[0].direction, deadline - time.time(), max_epochs)
        done = sum(t.state.name in ("COMPLETE", "PRUNED") for t in trials)
        tuner.optimize(done + queued, deadline=deadline, n_jobs=n_jobs, measure=True)
    clock.begin("search")
    if not tuner.interrupted:
        tuner.optimize(None, deadline=deadline, n_jobs=n_jobs, measure=True)
    clock.begin("report")
    result = _report(tuner, chosen, objectives[0], out, started)
    clock.begin(None)
    result["phases"] = clock.summary()
    if result["best"] is None and not tuner.interrupted:
        raise BudgetTooSmall(*_needed(clock, tuner.study.get_trials(deepcopy=False), max_epochs), result)
    return result


def _queue_references(tuner: Tuner, trials: list[Any], points: dict[str, dict[str, Any]], direction: str,
                      left: float, max_epochs: int) -> int:
    """Queue the defaults of the candidates that looked best to train in full while they fit in
    most of the ``left`` seconds: references that the sampled trials' rungs are measured against.
    The first one trains fewer epochs, one at least, when time is short, so that one candidate is
    trained to completion; the others need :data:`MIN_REFERENCE_EPOCHS`. Returns how many."""
    spent, queued = 0.0, 0
    for name, seconds in _ranked(trials, direction):
        share = FIRST_REFERENCE_SHARE if queued == 0 else REFERENCE_SHARE
        epochs = min(max_epochs, int((share * left - spent) // max(seconds, 1e-3)))  # fewer when time is short
        if epochs < (1 if queued == 0 else min(MIN_REFERENCE_EPOCHS, max_epochs)):
            continue
        tuner.study.enqueue_trial(_params(name, points[name]), user_attrs={"reference": True, "epochs": epochs})
        spent, queued = spent + epochs * seconds, queued + 1
    return queued


def _needed(clock: PhaseClock, trials: list[Any], max_epochs: int) -> tuple[str, float]:
    """The message and the budget (seconds) that would train one candidate to completion, from
    what this run measured: the timing, the first looks' epoch times (or, when no first look
    finished, the time the slowest one ran without finishing)."""
    before = clock.used.get("timing", 0.0)
    looks = [t for t in trials if t.user_attrs.get("probe") and t.user_attrs.get("wall_time_s")]
    finished = [t for t in looks if t.intermediate_values]
    if finished:
        fastest = min(finished, key=lambda t: float(t.user_attrs["wall_time_s"]))
        epoch = float(fastest.user_attrs["wall_time_s"])
        looked = sum(float(t.user_attrs["wall_time_s"]) for t in finished)
        what = f"one epoch of {fastest.params.get('arch')} took {epoch:.1f} s"
    elif looks:  # no epoch finished: the training split over the speed it ran at, or twice the try
        ran = max(float(t.user_attrs["wall_time_s"]) for t in looks)
        rates = [_samples_per_s(t) for t in looks]
        speed = max((r for r in rates if r), default=None)
        samples = clock.train_samples
        epoch = looked = samples / speed if speed and samples else max(2 * ran, clock.epoch_guess or 0.0)
        what = f"no candidate finished its first epoch in {ran:.1f} s (one takes about {epoch:.0f} s)"
    else:  # no time was left for a first look: the timed step, times the training split's batches of 8
        epoch = looked = clock.epoch_guess or before
        what = f"no time was left for a first look (one epoch: about {epoch:.1f} s by the timed step)"
    first = before + looked
    train = epoch * min(MIN_REFERENCE_EPOCHS, max_epochs) / FIRST_REFERENCE_SHARE
    needed = 1.5 * max(first / FIRST_LOOK_SHARE, (first + train) / (1 - REPORT_SHARE))  # 1.5: a loaded machine varies
    text = format_duration(needed)
    message = (f"no candidate was trained to completion within {format_duration(clock.budget, up=False)}: "
               f"timing took {before:.1f} s and {what}; give --time-budget {text} or more "
               "(or fewer --max-candidates, or --include the cheap ones)")
    return message, needed


def _samples_per_s(trial: Any) -> float | None:
    """Training samples per second of a trial's run, from its summary (``None``: unknown)."""
    path = trial.user_attrs.get("run_dir")
    try:
        value = json.loads((Path(path) / "summary.json").read_text()).get("train_samples_per_s") if path else None
    except (OSError, ValueError):
        return None
    return float(value) if isinstance(value, (int, float)) and value > 0 else None


def format_duration(seconds: float, *, up: bool = True) -> str:
    """``90`` -> ``1m30s``; rounded up to 10 s below 2 minutes, else to whole minutes (``up``)."""
    step = 10 if seconds < 120 else 60
    total = int(math.ceil(seconds / step) * step) if up else round(seconds)
    minutes, secs = divmod(total, 60)
    return (f"{minutes}m" if minutes else "") + (f"{secs}s" if secs or not minutes else "")


class BudgetTooSmall(UserError, RuntimeError):
    """Autopilot trained no candidate to completion within its time budget.

    :param message: one line with the budget it needs.
    :param needed_s: that budget in seconds, estimated from what the timing measured.
    :param result: the report written anyway (leaderboard without a best model).
    """

    def __init__(self, message: str, needed_s: float, result: dict[str, Any]) -> None:
        super().__init__(message)
        self.needed_s, self.result = needed_s, result


class PhaseClock:
    """Autopilot's phases: the plan printed at the start, the seconds each used at the end.

    :param started: ``time.time()`` at the start.
    :param budget: the whole budget in seconds.
    :param echo: where the lines go (the CLI: stderr); ``None``: the log.
    """

    def __init__(self, started: float, budget: float, echo: Any = None) -> None:
        self.started, self.budget, self.echo = started, budget, echo
        self.used: dict[str, float] = {}
        self.epoch_guess: float | None = None  # seconds of the cheapest candidate's epoch, from its timed step
        self.train_samples: int | None = None  # the training split's size, when it has one
        self._phase: str | None = None
        self._since = started

    def say(self, line: str) -> None:
        if self.echo is not None:
            self.echo(line)
        else:
            log.info("bestiary: %s", line)

    def begin(self, phase: str | None) -> None:
        """End the current phase (its seconds are added up) and start ``phase`` (``None``: done)."""
        now = time.time()
        if self._phase is not None:
            self.used[self._phase] = self.used.get(self._phase, 0.0) + now - self._since
        self._phase, self._since = phase, now

    def plan(self, timed: int, names: list[str], max_epochs: int) -> None:
        b = self.budget
        short = ", ".join(n.partition(":")[2] or n for n in names)
        train = 1 - FIRST_LOOK_SHARE - REPORT_SHARE
        rows = [("timing", f"<= {TIMING_SHARE:.0%} ({b * TIMING_SHARE:.0f} s)", f"{timed} timed on one step, {len(names)} kept: {short}"),
                ("first looks", f"<= {FIRST_LOOK_SHARE:.0%} ({b * FIRST_LOOK_SHARE:.0f} s) with timing",
                 f"{len(names)}, one epoch each with the run defaults"),
                ("references", f">= {train:.0%} ({b * train:.0f} s) with search",
                 f"the best first, up to {max_epochs} epochs unpruned (1 at least for the best)"),
                ("search", "what the references leave", "sampled trials, stopped at 1, 3, 9, ... epochs"),
                ("report", f"{REPORT_SHARE:.0%} ({b * REPORT_SHARE:.0f} s)", "test evaluation of each candidate's best")]
        self.say(f"autopilot plan for {format_duration(b, up=False)}: phase, share of the budget, candidates")
        for phase, share, what in rows:
            self.say(f"  {phase:<12} {share:<30} {what}")

    def summary(self) -> dict[str, float]:
        """Seconds per phase, printed as one line."""
        total = sum(self.used.values())
        parts = ", ".join(f"{k} {v:.1f} s" for k, v in self.used.items())
        self.say(f"autopilot time per phase: {parts} ({total:.0f} s of {self.budget:.0f} s)")
        return {k: round(v, 2) for k, v in self.used.items()}


def _report(tuner: Tuner, chosen: list[Entry], objective: Any, out: Path, started: float) -> dict[str, Any]:
    from .report import export_best, write_report

    study = tuner.study
    sign = 1.0 if objective.direction == "maximize" else -1.0
    trials = study.get_trials(deepcopy=False)
    rows = []
    for e in chosen:
        mine = [t for t in trials if t.params.get("arch") == e.qualified_name and t.user_attrs.get("run_dir")]
        complete = [t for t in mine if t.state.name == "COMPLETE"]
        pruned = [t for t in mine if t.state.name == "PRUNED"]
        row: dict[str, Any] = {"arch": e.qualified_name, "trials": len(mine), "complete": len(complete),
                               "pruned": len(pruned), "failed": sum(t.state.name == "FAIL" for t in trials
                                                                   if t.params.get("arch") == e.qualified_name),
                               "time_s": sum(t.user_attrs.get("wall_time_s") or 0.0 for t in mine)}
        pick = max(complete, key=lambda t: sign * t.values[0]) if complete else None
        reported = [t for t in pruned if t.intermediate_values]
        if pick is None and reported:
            pick = max(reported, key=lambda t: sign * _last(t))
        if pick is not None:
            row.update(_candidate(pick, objective.name, sign, complete, out, e, tuner))
        rows.append(row)
    rows.sort(key=lambda r: (r.get("status") != "complete", -sign * r[objective.name] if r.get(objective.name) is not None else math.inf))
    out.mkdir(parents=True, exist_ok=True)
    study_report = write_report(study, out / "study")
    result: dict[str, Any] = {"task": chosen[0].task, "metric": objective.name, "direction": objective.direction,
                              "leaderboard": rows, "best": None, "files": {"leaderboard": str(out / "leaderboard.csv"),
                                                                            "study": str(out / "study")}}
    if rows and rows[0].get("status") == "complete":
        result["best"] = rows[0]
        result["files"]["best_model"] = str(export_best(rows[0]["run_dir"], out / "best_model"))
    result["elapsed_s"] = time.time() - started
    result["failures"] = list(tuner.failures)
    result["interrupted"] = tuner.interrupted
    result["study_files"] = study_report.get("files", {})
    (out / "leaderboard.json").write_text(json.dumps(result, indent=2, default=str) + "\n")
    _write_csv(rows, out / "leaderboard.csv")
    return result


def _params(arch: str, point: dict[str, Any]) -> dict[str, Any]:
    return {"arch": arch, **{f"{arch}/{k}": v for k, v in point.items()}}


def _ranked(trials: list[Any], direction: str) -> list[tuple[str, float]]:
    """Architectures by the value of their first look, best first, with the seconds it took."""
    sign = 1.0 if direction == "maximize" else -1.0
    looked = [t for t in trials if t.user_attrs.get("probe") and t.intermediate_values and not math.isnan(_last(t))]
    ranked = sorted(looked, key=lambda t: -sign * _last(t))
    return [(t.params["arch"], float(t.user_attrs.get("wall_time_s") or 0.0)) for t in ranked]


def _last(trial: Any) -> float:
    values = trial.intermediate_values
    return float(values[max(values)]) if values else math.nan


def _candidate(trial: Any, metric: str, sign: float, complete: list[Any], out: Path, entry: Entry,
               tuner: Tuner) -> dict[str, Any]:
    """A leaderboard row for a candidate's best trial: its values, a test evaluation of its model,
    and its config written as TOML (every trial is configured for the full number of epochs)."""
    from ..engine.evaluate import evaluate_run
    from ..engine.rundir import RunDir
    from .trial import measure_model

    run_dir = trial.user_attrs["run_dir"]
    row: dict[str, Any] = {"status": trial.state.name.lower(), "trial": trial.number, "run_dir": run_dir,
                           metric: trial.values[0] if trial.values and trial.state.name == "COMPLETE" else _last(trial),
                           "train_time_s": trial.user_attrs.get("wall_time_s")}
    if trial.state.name == "COMPLETE":
        row.update({k: trial.user_attrs.get(k) for k in ("params", "latency_ms", "latency_batch", "device")})
        if row.get("params") is None:
            row.update(measure_model(run_dir, device=tuner.config.device))
        try:
            test = evaluate_run(run_dir, split="test", device=tuner.config.device)
            row[f"test_{metric}"] = test.get(metric)
        except (KeyError, ValueError, FileNotFoundError) as exc:
            row[f"test_{metric}"] = None
            row["test_error"] = str(exc)
    config = dict(RunDir(run_dir).read_json("config.json")["config"])
    for key in ("run_dir", "quiet"):
        config.pop(key, None)
    target = out / "configs" / f"{entry.name}.toml"
    target.parent.mkdir(parents=True, exist_ok=True)
    header = (f"# {entry.qualified_name} on {config['dataset']}: {metric} {row[metric]:.6g} "
              f"(trial {trial.number}, {row['status']})\n# rerun: bestiary train --config {target}\n")
    target.write_text(header + to_toml(config), encoding="utf-8")
    row["config"] = str(target)
    return row


def to_toml(values: dict[str, Any]) -> str:
    """TOML for a run config: scalars and lists first, then one table per dict (``None`` left out)."""
    lines, tables = [], []
    for key, value in values.items():
        if value is None:
            continue
        if isinstance(value, dict):
            tables.append((key, value))
        else:
            lines.append(f"{_key(key)} = {toml_value(value)}")
    for key, table in tables:
        lines.append(f"\n[{_key(key)}]")
        lines.extend(f"{_key(k)} = {toml_value(v)}" for k, v in table.items() if v is not None)
    return "\n".join(lines) + "\n"


def _key(key: str) -> str:
    bare = key.replace("_", "").replace("-", "")
    return key if bare.isascii() and bare.isalnum() else toml_string(key)


def _write_csv(rows: list[dict[str, Any]], path: Path) -> None:
    import csv

    columns: list[str] = []
    for row in rows:
        columns += [k for k in row if k not in columns]
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
