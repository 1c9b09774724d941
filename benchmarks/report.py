"""Reports of a suite's rows: a Markdown leaderboard, PNG plots, and comparing two result sets."""

from __future__ import annotations

import math
from collections import defaultdict
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from .runner import latest, read_rows

LEADERBOARD = "leaderboard.md"
#: columns shown after the primary metric, when a row has them
SHOWN = ("train_samples_per_s", "infer_samples_per_s", "bare_ratio", "train_step_ms", "peak_train_mem_mb",
         "params_m", "gmacs", "wall_time_s", "time_to_target_s", "wall_s", "get_entry_bare_us",
         "table_get_qualified_us", "heavy_modules")
LABELS = ("probe", "arch", "dataset", "strategy", "world_size", "precision", "batch_size", "compile", "channels_last")


def fmt(value: float) -> str:
    if value == 0 or (1e-3 <= abs(value) < 1e5):
        return f"{value:.4g}"
    return f"{value:.3e}"


def cell_text(stat: dict[str, Any]) -> str:
    """``median`` with ``[min, max]`` when repeats differ."""
    if stat["min"] == stat["max"]:
        return fmt(stat["median"])
    return f"{fmt(stat['median'])} [{fmt(stat['min'])}, {fmt(stat['max'])}]"


def _groups(rows: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Rows by table: quality rows per dataset (metrics differ by task), others per measure, and
    per dataset too when a measure's rows span several (a classifier's figures are never ranked
    against a forecaster's)."""
    datasets: dict[str, set[str]] = defaultdict(set)
    for row in rows:
        if row.get("dataset"):
            datasets[row["measure"]].add(str(row["dataset"]))
    groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        apart = row["measure"] == "quality" or len(datasets[row["measure"]]) > 1
        key = f"{row['measure']} on {row['dataset']}" if apart and row.get("dataset") else row["measure"]
        groups[key].append(row)
    return groups


def _ranked_metric(group: list[dict[str, Any]]) -> str | None:
    """The one metric a table is ranked by: the primary metric most of its rows share (the first
    row's on a tie). Rows whose primary differs (a cell with another target) are ranked by this one
    too, never by their own: values of two metrics are never ranked in one order."""
    primaries = [r["primary"] for r in group if r.get("primary")]
    return max(dict.fromkeys(primaries), key=primaries.count) if primaries else None


def _sort_key(row: dict[str, Any], metric: str | None) -> float:
    if row.get("status") != "ok" or metric not in row["metrics"]:
        return math.inf
    value = row["metrics"][metric]["median"]
    return -value if row["better"].get(metric) == "higher" else value


def _split(group: list[dict[str, Any]], metric: str) -> str | None:
    """Which split a metric column was measured on, for its header: quality evaluates the suite's
    split after training (``test``), scaling reads the run's last validation; measurements of the
    bench itself (times, throughput) have none."""
    from .runner import is_metric

    if not is_metric(metric):
        return None
    splits = {str(r.get("info", {}).get("split") or ("validation" if r["measure"] == "scaling" else "")) for r in group}
    splits.discard("")
    return " / ".join(sorted(splits)) or None


def _header(group: list[dict[str, Any]], metric: str) -> str:
    """``test accuracy (higher is better)``: the split, the name, the direction. The loss is each
    model's own training objective (a likelihood for one, a quantile loss for another), so it
    carries no direction: lower is not better across models."""
    split = _split(group, metric)
    name = f"{split} {metric}" if split else metric
    if metric == "loss":
        return f"{name} (each model's own objective, not comparable)"
    return f"{name} {_arrow(group, metric)}".strip()


def add_efficiency(rows: list[dict[str, Any]]) -> None:
    """Scaling rows: ``efficiency`` = samples/s over (world size x the single-process samples/s)."""
    base = {(r["arch"], r["dataset"]): r["metrics"]["train_samples_per_s"]["median"] for r in rows
            if r.get("measure") == "scaling" and r.get("status") == "ok" and r.get("world_size") == 1
            and r.get("strategy") == "single" and "train_samples_per_s" in r["metrics"]}
    for r in rows:
        if r.get("measure") != "scaling" or r.get("status") != "ok" or "train_samples_per_s" not in r["metrics"]:
            continue
        one = base.get((r["arch"], r["dataset"]))
        if one:
            value = r["metrics"]["train_samples_per_s"]["median"] / (r["world_size"] * one)
            r["metrics"]["efficiency"] = {"median": value, "min": value, "max": value, "values": [value]}
            r["better"]["efficiency"] = "higher"


def leaderboard(rows: list[dict[str, Any]], title: str) -> str:
    """The rows as Markdown tables, best first by each row's primary metric, errors listed apart."""
    rows = [dict(r, metrics={k: dict(v) for k, v in r.get("metrics", {}).items()}, better=dict(r.get("better", {})))
            for r in rows]
    add_efficiency(rows)
    lines = [f"# {title}", ""]
    ok = [r for r in rows if r["status"] == "ok"]
    for name, group in _groups(ok).items():
        # the name, and the settings that differ between rows
        labels = [k for k in LABELS if k in group[0]
                  and (k in ("arch", "probe") or len({str(r.get(k)) for r in group}) > 1)]
        primaries = list(dict.fromkeys(r.get("primary") for r in group if r.get("primary")))
        extra = ["efficiency"] if any("efficiency" in r["metrics"] for r in group) else []
        shown = [m for m in SHOWN if m not in primaries and any(m in r["metrics"] for r in group)]
        metric_cols = primaries + extra + shown
        for r in group:
            metric_cols += [m for m in r["metrics"] if m not in metric_cols and m not in ("total_s",)
                            and r["measure"] == "quality" and r["better"].get(m)]
        ranked = _ranked_metric(group)
        header = ["#", *labels, *(_header(group, str(m)) for m in metric_cols)]
        lines += [f"## {name}", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        for i, r in enumerate(sorted(group, key=lambda r: _sort_key(r, ranked)), 1):
            values = [str(r.get(k)) for k in labels]
            values += [cell_text(r["metrics"][m]) if m in r["metrics"] else "-" for m in metric_cols]
            lines.append("| " + " | ".join([str(i), *values]) + " |")
        method = group[0].get("method", {})
        order = f"Ranked by {_header(group, ranked)}." if ranked else "Not ranked."
        lines += ["", order, _method_line(method, group), ""]
    errors = [r for r in rows if r["status"] != "ok"]
    if errors:
        lines += ["## errors", "", "| cell | error |", "|---|---|"]
        for r in errors:
            lines.append(f"| {r['cell']} | {r['error'].splitlines()[0].replace('|', '/')[:400]} |")
        lines.append("")
    return "\n".join(lines)


def _arrow(group: list[dict[str, Any]], metric: str | None) -> str:
    way = next((r["better"].get(metric) for r in group if metric in r["better"]), None)
    return {"higher": "(higher is better)", "lower": "(lower is better)"}.get(way or "", "")


def _method_line(method: dict[str, Any], group: list[dict[str, Any]]) -> str:
    if not method or "error" in method:
        return "Method: unknown."
    repeats = {r.get("method", {}).get("repeats") for r in group}
    parts = [f"device {method.get('device_name')}", f"torch {method.get('torch')}",
             f"CUDA {method.get('cuda')}" if str(method.get("device", "")).startswith("cuda") else "no GPU used",
             f"bestiary {method.get('bestiary')}", f"timm {method.get('timm')}",
             f"{method.get('threads')} threads", f"repeats {'/'.join(str(x) for x in sorted(repeats, key=str))}"]
    if method.get("warmup") is not None:
        parts.append(f"warm-up {method['warmup']}, iterations {method['iterations']}")
    parts.append(f"load average {method.get('load_average')} at the last cell")
    return "Method: " + "; ".join(parts) + ". Values: median [min, max] over repeats."


# -- plots -----------------------------------------------------------------------------------


def plots(rows: list[dict[str, Any]], out: Path) -> list[Path]:
    """PNG plots of the successful rows: the primary metric per table (see :func:`bar_figure`), and
    quality against training throughput; returns the files written."""
    import matplotlib  # plotting only when reports are written

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [dict(r, metrics={k: dict(v) for k, v in r.get("metrics", {}).items()}, better=dict(r.get("better", {})))
            for r in rows if r.get("status") == "ok"]
    add_efficiency(rows)
    files = []
    for name, group in _groups(rows).items():
        slug = name.replace(" on ", "-").replace(" ", "_")
        for metric in _bar_metrics(group):
            fig = bar_figure(group, metric, _title(group[0]["suite"], name))
            path = out / f"{slug}-{metric}.png"
            fig.savefig(path, dpi=110)
            plt.close(fig)
            files.append(path)
        scatter = [r for r in group if r["measure"] == "quality" and r.get("primary") in r["metrics"]
                   and "train_samples_per_s" in r["metrics"]]
        if len(scatter) >= 1:
            fig, ax = plt.subplots(figsize=(6, 4))
            for r in scatter:
                x, y = r["metrics"]["train_samples_per_s"]["median"], r["metrics"][r["primary"]]["median"]
                ax.scatter([x], [y])
                ax.annotate(r["arch"], (x, y), fontsize=8, xytext=(4, 4), textcoords="offset points")
            xs = [r["metrics"]["train_samples_per_s"]["median"] for r in scatter]
            if max(xs) > 10 * min(xs):  # a log axis only where the throughputs span decades
                ax.set_xscale("log")
            ax.margins(x=0.15, y=0.15)  # room for the labels of the outermost points
            ax.set_xlabel("training samples/s")
            ax.set_ylabel(str(scatter[0]["primary"]))
            ax.set_title(f"{_title(group[0]['suite'], name)}\n{scatter[0]['primary']} against throughput", fontsize=10)
            fig.tight_layout()
            path = out / f"{slug}-vs-throughput.png"
            fig.savefig(path, dpi=110)
            plt.close(fig)
            files.append(path)
    return files


def bar_figure(group: list[dict[str, Any]], metric: str, title: str) -> Any:
    """The bar plot of ``metric`` over a table's rows, best first, as a matplotlib figure.

    Each bar is annotated with its median; min-max whiskers are drawn only for rows of two
    repeats or more (one repeat has no spread to show); when the values lie close together far
    from zero (accuracies of 0.961 and 0.967), the value axis is cut to their range, with a break
    mark and a note saying where it starts, so that the difference shows.
    """
    import matplotlib  # plotting only when reports are written

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    way = _arrow(group, metric)
    have = sorted((r for r in group if metric in r["metrics"]),
                  key=lambda r: -r["metrics"][metric]["median"] if "higher" in way else r["metrics"][metric]["median"])
    stats = [r["metrics"][metric] for r in have]
    med = [st["median"] for st in stats]
    fig, ax = plt.subplots(figsize=(max(5.0, 0.6 * len(have) + 2), 4))
    bars = ax.bar(range(len(have)), med, color="#4C72B0")
    spread = [i for i, st in enumerate(stats) if len(st.get("values") or [st["median"]]) >= 2]
    if spread:
        ax.errorbar(spread, [med[i] for i in spread], fmt="none", ecolor="black", capsize=4,
                    yerr=[[med[i] - stats[i]["min"] for i in spread], [stats[i]["max"] - med[i] for i in spread]])
    ax.bar_label(bars, labels=[fmt(m) for m in med], fontsize=7, padding=2)
    cut = _zoom(ax, [st["min"] for st in stats], [st["max"] for st in stats])
    ax.set_xticks(range(len(have)), [_short(r) for r in have], rotation=30, ha="right", fontsize=8)
    ax.set_ylabel(f"{_split(group, metric) or ''} {metric} {way}".strip())
    what = "median, min-max over repeats" if spread else "one repeat: no spread"
    ax.set_title(f"{title}\n{metric} ({what})", fontsize=10)
    if cut:
        ax.text(0.01, 0.99, cut, transform=ax.transAxes, va="top", fontsize=8, color="#B03030")
    fig.tight_layout()
    return fig


def _zoom(ax: Any, lows: list[float], highs: list[float]) -> str | None:
    """Cut the value axis to the data when bars from zero would all look the same height: the
    values share a sign and their range is under half their size. Returns the note to show."""
    lo, hi = min(lows, default=0.0), max(highs, default=0.0)
    span = hi - lo
    if lo * hi <= 0 or span >= 0.5 * min(abs(lo), abs(hi)):
        ax.margins(y=0.12)  # room for the values above the bars
        return None
    pad = max(span, 0.01 * max(abs(lo), abs(hi)))
    if hi > 0:
        bottom, top = lo - 0.6 * pad, hi + 0.5 * pad
        ax.set_ylim(bottom, top)
        edge, note = 0.0, f"value axis cut: starts at {fmt(bottom)}, not 0"
    else:
        bottom, top = lo - 0.5 * pad, hi + 0.6 * pad
        ax.set_ylim(bottom, top)
        edge, note = 1.0, f"value axis cut: ends at {fmt(top)}, not 0"
    for dx in (0.0, 0.012):  # a break mark on the value axis, where it was cut
        ax.plot([-0.008 + dx, 0.004 + dx], [edge - 0.015, edge + 0.015], transform=ax.transAxes, color="black",
                clip_on=False, linewidth=1)
    return note


def _title(suite: str, table: str) -> str:
    return suite if table == suite else f"{suite}, {table}"


def _bar_metrics(group: list[dict[str, Any]]) -> list[str]:
    primaries = list(dict.fromkeys(r.get("primary") for r in group if r.get("primary")))
    extra = [m for m in ("efficiency", "infer_samples_per_s", "bare_ratio") if any(m in r["metrics"] for r in group)]
    return [m for m in primaries + extra if m]


def _short(row: dict[str, Any]) -> str:
    parts = [str(row.get("probe") or row.get("arch"))]
    if row["measure"] == "scaling":
        parts.append(f"{row['strategy']} x{row['world_size']}")
    if row["measure"] == "throughput":
        parts.append(f"{row['precision']} b{row.get('info', {}).get('batch_used', row.get('batch_size'))}"
                     + (" compiled" if row.get("compile") else ""))
    return " ".join(parts)


def write_reports(rows: list[dict[str, Any]], out: Path, title: str) -> tuple[str, list[Path]]:
    """Write ``leaderboard.md`` and the plots into ``out``; return the Markdown and the files."""
    text = leaderboard(rows, title)
    path = Path(out) / LEADERBOARD
    path.write_text(text + "\n", encoding="utf-8")
    return text, [path, *plots(rows, Path(out))]


# -- compare ---------------------------------------------------------------------------------


def parse_threshold(text: str) -> float:
    """``5%`` or ``0.05`` -> 0.05."""
    raw = text.strip()
    try:
        value = float(raw[:-1]) / 100 if raw.endswith("%") else float(raw)
    except ValueError:
        raise ConfigError(f"--threshold {text!r}: give a percentage such as 5% or a fraction such as 0.05") from None
    if not 0 <= value < 1 or (not raw.endswith("%") and value >= 1):
        raise ConfigError(f"--threshold {text!r}: must lie between 0% and 100% (e.g. 5% or 0.05)")
    return value


def compare(old: Path, new: Path, threshold: float, metrics: list[str] | None = None) -> dict[str, Any]:
    """Changes from ``old`` to ``new`` (folders or results files), cell by cell.

    A change is a regression when a higher-is-better metric falls, or a lower-is-better one
    rises, by more than ``threshold`` (relative); a cell that succeeded in ``old`` and failed in
    ``new`` is one too. Metrics without a direction (parameters, GMACs) are shown, never judged.
    """
    old_rows, new_rows = read_rows(old), read_rows(new)
    for path, rows in ((old, old_rows), (new, new_rows)):
        if not rows:
            raise ConfigError(f"{path} holds no benchmark results (expected a results.jsonl from `bestiary bench run`)")
    before = {(r.get("suite"), r.get("cell")): r for r in latest(old_rows)}
    after = {(r.get("suite"), r.get("cell")): r for r in latest(new_rows)}
    if not before.keys() & after.keys():
        suites = sorted({str(k[0]) for k in before}), sorted({str(k[0]) for k in after})
        raise ConfigError(f"{old} ({', '.join(suites[0])}) and {new} ({', '.join(suites[1])}) share no cell; "
                          "compare two runs of the same suite")
    changes, regressions, missing = [], [], []
    for key, a in before.items():
        b = after.get(key)
        if b is None:
            missing.append(f"{key[0]}/{key[1]}")
            continue
        if a.get("status") == "ok" and b.get("status") != "ok":
            item = {"suite": key[0], "cell": key[1], "metric": "status", "old": "ok", "new": "error",
                    "change": None, "regression": True, "error": b.get("error")}
            changes.append(item)
            regressions.append(item)
            continue
        if a.get("status") != "ok" or b.get("status") != "ok":
            continue
        for metric, stat in a["metrics"].items():
            if metric not in b["metrics"] or (metrics and metric not in metrics):
                continue
            x, y = stat["median"], b["metrics"][metric]["median"]
            change = (y - x) / abs(x) if x else (0.0 if y == x else math.inf)
            way = b.get("better", {}).get(metric) or a.get("better", {}).get(metric)
            worse = (way == "higher" and change < -threshold) or (way == "lower" and change > threshold)
            item = {"suite": key[0], "cell": key[1], "metric": metric, "old": x, "new": y, "change": change,
                    "better": way, "regression": bool(worse)}
            changes.append(item)
            if worse:
                regressions.append(item)
    added = [f"{k[0]}/{k[1]}" for k in after if k not in before]
    return {"threshold": threshold, "changes": changes, "regressions": regressions, "missing": missing,
            "added": added}
