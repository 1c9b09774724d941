"""What a study leaves behind: the best trial (or the Pareto front), a leaderboard, parameter
importances, optuna's plots as PNG files and the best model exported like any run's model.

::

    OUT/
      best.json            best trial (one objective) or the Pareto front (several)
      leaderboard.csv      every trial: number, state, values, parameters, run directory, time
      leaderboard.json
      importances.json     parameter importances per objective (fANOVA)
      plots/               history-*.png, importances-*.png, parallel-*.png, pareto.png, intermediate.png
      best_model/          model.safetensors + model.json: bestiary.load_model("OUT/best_model")
"""

from __future__ import annotations

import csv
import json
import shutil
import warnings
from pathlib import Path
from typing import Any

from .trial import LATENCY


def leaderboard(study: Any) -> list[dict[str, Any]]:
    """One row per trial, finished ones first, best first."""
    from optuna.trial import TrialState

    names = study.metric_names or [f"value{i}" for i in range(len(study.directions))]
    signs = [1 if d.name == "MAXIMIZE" else -1 for d in study.directions]
    rows = []
    for t in study.get_trials(deepcopy=False):
        row: dict[str, Any] = {"trial": t.number, "state": t.state.name.lower()}
        for i, name in enumerate(names):
            row[name] = t.values[i] if t.values else None
        if t.state == TrialState.PRUNED and t.intermediate_values:
            row["last_reported"] = t.intermediate_values[max(t.intermediate_values)]
            row["evaluations"] = max(t.intermediate_values)
        row.update({f"param:{k}": v for k, v in t.params.items()})
        for key in ("run_dir", "wall_time_s", "params", "latency_ms", "stop_reason", "error"):
            if key in t.user_attrs and key not in row:
                row[key] = t.user_attrs[key]
        if "failed_trial" in t.system_attrs:
            row["retry_of"] = t.system_attrs["failed_trial"]
        rows.append(row)

    def rank(row: dict[str, Any]) -> tuple[Any, ...]:
        value = row[names[0]]
        return (row["state"] != "complete", -signs[0] * value if value is not None else 0.0, row["trial"])

    return sorted(rows, key=rank)


def best(study: Any) -> dict[str, Any]:
    """The best trial, or with several objectives the trials of the Pareto front."""
    names = study.metric_names or [f"value{i}" for i in range(len(study.directions))]

    def describe(t: Any) -> dict[str, Any]:
        return {"trial": t.number, "values": dict(zip(names, t.values)), "params": t.params,
                "run_dir": t.user_attrs.get("run_dir"), "wall_time_s": t.user_attrs.get("wall_time_s")}

    complete = [t for t in study.get_trials(deepcopy=False) if t.state.name == "COMPLETE"]
    if not complete:
        return {"objectives": names, "best": None, "pareto_front": []}
    if len(study.directions) == 1:
        return {"objectives": names, "best": describe(study.best_trial)}
    front = sorted(study.best_trials, key=lambda t: t.values[0] * (-1 if study.directions[0].name == "MAXIMIZE" else 1))
    return {"objectives": names, "best": describe(front[0]), "pareto_front": [describe(t) for t in front]}


def evaluator() -> Any:
    """optuna's default (fANOVA), seeded so reports repeat, with fewer trees: studies are small."""
    import optuna

    return optuna.importance.FanovaImportanceEvaluator(n_trees=32, seed=0)


def importances(study: Any) -> dict[str, Any]:
    """Parameter importances (optuna's default evaluator) per objective, or why there are none."""
    import optuna

    names = study.metric_names or [f"value{i}" for i in range(len(study.directions))]
    complete = [t for t in study.get_trials(deepcopy=False) if t.state.name == "COMPLETE"]
    out: dict[str, Any] = {}
    for i, name in enumerate(names):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                target = (lambda t, i=i: t.values[i]) if len(names) > 1 else None
                out[name] = dict(optuna.importance.get_param_importances(study, target=target, evaluator=evaluator()))
        except (ValueError, RuntimeError) as exc:
            out[name] = {"unavailable": f"{exc} ({len(complete)} complete trial(s))"}
    return out


def plots(study: Any, directory: Path) -> list[Path]:
    """optuna's matplotlib plots as PNG files; a plot the study cannot have yet is left out."""
    import matplotlib

    matplotlib.use("Agg", force=False)  # files only; no window
    import matplotlib.pyplot as plt
    from optuna.visualization import matplotlib as ovm

    directory.mkdir(parents=True, exist_ok=True)
    names = study.metric_names or [f"value{i}" for i in range(len(study.directions))]
    multi = len(names) > 1
    jobs: list[tuple[str, Any]] = []
    for i, name in enumerate(names):
        kw = {"target": (lambda t, i=i: t.values[i]), "target_name": name} if multi else {"target_name": name}
        slug = name.replace("/", "_")
        jobs.append((f"history-{slug}", lambda kw=kw: ovm.plot_optimization_history(study, **kw)))
        jobs.append((f"importances-{slug}", lambda kw=kw: ovm.plot_param_importances(study, evaluator=evaluator(), **kw)))
        jobs.append((f"parallel-{slug}", lambda kw=kw: ovm.plot_parallel_coordinate(study, **kw)))
    if multi:
        jobs.append(("pareto", lambda: ovm.plot_pareto_front(study, target_names=names)))
    elif any(t.intermediate_values for t in study.get_trials(deepcopy=False)):
        jobs.append(("intermediate", lambda: ovm.plot_intermediate_values(study)))
    if not any(t.state.name == "COMPLETE" for t in study.get_trials(deepcopy=False)):
        jobs = [job for job in jobs if job[0] == "intermediate"]
    return _draw(jobs, directory, plt)


def _draw(jobs: list[tuple[str, Any]], directory: Path, plt: Any) -> list[Path]:
    written = []
    for stem, make in jobs:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # optuna marks its matplotlib plots experimental
                ax = make()
        except (ValueError, RuntimeError, ZeroDivisionError):
            continue  # e.g. importances of fewer than two trials
        fig = (ax.flat[0] if hasattr(ax, "flat") else ax).figure
        fig.set_size_inches(8, 5)
        fig.tight_layout()
        path = directory / f"{stem}.png"
        fig.savefig(path, dpi=100)
        plt.close(fig)
        written.append(path)
    return written


def export_best(run_dir: str | Path, target: Path) -> Path:
    """Copy a run's model artefact to ``target`` (``bestiary.load_model(target)`` rebuilds it)."""
    from ..engine.artifact import read_meta  # imports torch and safetensors: only when exporting

    source, _ = read_meta(run_dir)
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(source, target)
    (target / "run.json").write_text(json.dumps({"run_dir": str(run_dir)}, indent=2) + "\n")
    return target


def write_report(study: Any, out: str | Path, *, with_plots: bool = True) -> dict[str, Any]:
    """Write every result file of ``study`` into ``out``; return what :func:`best` returns plus the
    paths written (``leaderboard``, ``importances``, ``plots``, ``best_model``)."""
    import optuna

    level = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.ERROR)  # "no complete trials yet" and the like are in the files
    try:
        return _write_report(study, Path(out), with_plots)
    finally:
        optuna.logging.set_verbosity(level)


def _write_report(study: Any, out: Path, with_plots: bool) -> dict[str, Any]:
    out.mkdir(parents=True, exist_ok=True)
    rows = leaderboard(study)
    result = best(study)
    result["importances"] = importances(study)
    (out / "best.json").write_text(json.dumps(result, indent=2, default=str) + "\n")
    (out / "importances.json").write_text(json.dumps(result["importances"], indent=2) + "\n")
    (out / "leaderboard.json").write_text(json.dumps(rows, indent=2, default=str) + "\n")
    columns: list[str] = []
    for row in rows:
        columns += [k for k in row if k not in columns]
    with open(out / "leaderboard.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
    result["leaderboard"] = rows
    result["files"] = {"leaderboard": str(out / "leaderboard.csv"), "best": str(out / "best.json")}
    if with_plots:
        result["files"]["plots"] = [str(p) for p in plots(study, out / "plots")]
    if result["best"] and result["best"].get("run_dir"):
        result["files"]["best_model"] = str(export_best(result["best"]["run_dir"], out / "best_model"))
    return result


__all__ = ["LATENCY", "best", "export_best", "importances", "leaderboard", "plots", "write_report"]
