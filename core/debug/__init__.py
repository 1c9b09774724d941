"""The training debugger and profiler: rules that watch a run and suggest fixes.

A run names rules (``bestiary train ... --rules default``); the ``debugger`` plugin then collects
reduced statistics every ``debug_every`` steps (:mod:`bestiary.plugins.debugger.collect`) through the
engine's per-step hooks, feeds them with the run's metrics to the rules, and writes findings to
``findings.jsonl``, the console, TensorBoard and a report (:mod:`bestiary.plugins.debugger.session`).
``bestiary debug RUN_DIR`` replays rules on a finished run's saved statistics
(:mod:`bestiary.debug.replay`).

This package holds what rules and replays share: rules, findings, the rule runner and the report.
It is plain Python (no torch).
"""

from __future__ import annotations

from .findings import Finding, read_findings
from .rule import Rule, build_rule, parse_rules, select_rules

__all__ = ["Finding", "Rule", "build_rule", "parse_rules", "read_findings", "select_rules"]
