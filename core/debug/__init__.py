"""The training debugger and profiler: rules that watch a run and suggest fixes.

A run names rules (``bestiary train ... --rules default``); the engine then collects reduced
statistics every ``debug_every`` steps (:mod:`bestiary.debug.collect`), feeds them with the run's
metrics to the rules, and writes findings to ``findings.jsonl``, the console, TensorBoard and a
report (:mod:`bestiary.debug.session`). ``bestiary debug RUN_DIR`` replays rules on a finished
run's saved statistics (:mod:`bestiary.debug.replay`).

Importing this package stays cheap: rules and findings are plain Python; torch loads only with the
collector, which runs import.
"""

from __future__ import annotations

from .findings import Finding, read_findings
from .rule import Rule, build_rule, parse_rules, select_rules

__all__ = ["Finding", "Rule", "build_rule", "parse_rules", "read_findings", "select_rules"]
