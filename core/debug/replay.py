"""Offline replay: run rules on a finished (or interrupted) run's saved statistics and metrics."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..engine.config import migrate
from ..engine.rundir import RunDir
from .findings import Finding
from .report import INFO, STATS
from .rule import select_rules
from .runner import RuleRunner


def load_records(path: str | Path) -> list[dict[str, Any]]:
    """The collection records of ``RUN_DIR/debug/stats.jsonl`` (lines cut short by a kill are skipped)."""
    file = Path(path) / STATS
    out = []
    if file.exists():
        for line in file.read_text().splitlines():
            try:
                out.append(json.loads(line))
            except ValueError:
                continue
    return out


def saved_settings(config: dict[str, Any]) -> tuple[str | None, dict[str, Any]]:
    """The rules and rule parameters a saved ``config.json`` names, in the ``debugger`` plugin's
    options table (a config written before the table existed is read through :func:`migrate`)."""
    table = migrate(config).get("options", {}).get("debugger") or {}
    return table.get("rules"), dict(table.get("rule_options") or {})


def replay(run_dir: str | Path, rules: str | None = None, *, host: Any = None,
           options: dict[str, Any] | None = None) -> tuple[list[Finding], list[Any], int]:
    """Replay rules on a run directory, in the order the live run saw events.

    :param run_dir: a run directory whose run had rules (it holds ``debug/stats.jsonl``).
    :param rules: rules to run (as ``--rules``); default: the rules the run used.
    :param host: plugin host (default: the process-wide one).
    :param options: rule parameters by rule; default: the run's ``[options.debugger] rule_options``.
    :return: the findings, the rules that ran, and the number of collection records replayed.
    :raises FileNotFoundError: the directory is not a run, or its run collected no statistics.
    """
    rd = RunDir(run_dir)
    if not rd.exists():
        raise FileNotFoundError(f"{run_dir} is not a run directory (no config.json); pass a folder `bestiary train` created")
    info_file = rd.path / INFO
    if not info_file.exists():
        raise FileNotFoundError(f"{run_dir} holds no debugger statistics ({INFO}): train with --rules default "
                                "(or any rules) to collect them")
    saved_rules, saved = saved_settings(rd.read_json("config.json")["config"])
    spec = rules or saved_rules or "default"
    chosen = select_rules(spec, host, saved if options is None else options, strict=False)
    found: list[Finding] = []
    info = json.loads(info_file.read_text())
    runner = RuleRunner(chosen, found.append, info.get("device", "cpu"))
    runner.start(info)
    events: list[tuple[int, int, dict[str, Any]]] = []
    records = load_records(rd.path)
    events += [(r["step"], 0, r) for r in records]
    events += [(m["step"], 1 if m.get("split") == "train" else 2, m) for m in rd.metrics()]
    for step, kind, item in sorted(events, key=lambda e: (e[0], e[1])):
        if kind == 0:
            runner.observe(item)
        else:
            values = {k: v for k, v in item.items() if k not in ("step", "epoch", "split", "time")}
            runner.metrics(step, item.get("split", "train"), values)
    return found, runner.rules + runner.skipped, len(records)
