"""The debugger report: ``RUN_DIR/debug/report.md``, written when a run ends and by ``bestiary debug``."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from .findings import Finding
from .rule import Rule

#: Files of a run directory the live debugger writes and ``bestiary debug`` reads (paths relative to it):
#: one finding per line as found; one collection record per line; the facts rules start from; the report.
FINDINGS = "findings.jsonl"
STATS = "debug/stats.jsonl"
INFO = "debug/info.json"
REPORT = "debug/report.md"


def render(findings: list[Finding], rules: list[Rule], *, title: str, every: int, records: int,
           skipped: Sequence[Rule] = (), errors: Mapping[str, str] | None = None, stop_reason: str | None = None) -> str:
    """The report as Markdown: findings grouped by rule, then every rule that ran and its parameters."""
    lines = [f"# {title}", ""]
    by_rule: dict[str, list[Finding]] = {}
    for f in findings:
        by_rule.setdefault(f.rule, []).append(f)
    if stop_reason:
        lines += [f"The run was stopped: {stop_reason}.", ""]
    if findings:
        lines += [(f"{len(findings)} finding(s) from {len(by_rule)} rule(s), from {records} collection(s) "
                   f"(every {every} steps)."), ""]
        for rule, items in by_rule.items():
            lines.append(f"## {rule}")
            lines.append("")
            lines += [f.markdown() for f in items]
            lines.append("")
    else:
        lines += [f"No findings: no rule saw a problem in {records} collection(s) (every {every} steps).", ""]
    lines += ["## Rules", "", "| rule | action | parameters | findings |", "|---|---|---|---|"]
    for r in rules:
        params = ", ".join(f"{k}={v}" for k, v in r.params().items() if k != "action") or "-"
        lines.append(f"| {r.name} | {r.action} | {params} | {len(by_rule.get(r.name, []))} |")
    for r in skipped:
        lines.append(f"| {r.name} | - | not run: needs a {r.device} device | - |")
    for name, error in (errors or {}).items():
        lines.append(f"| {name} | - | switched off after an error: {error} | - |")
    return "\n".join(lines) + "\n"


def summary(findings: list[Finding]) -> dict[str, Any]:
    by_rule: dict[str, int] = {}
    for f in findings:
        by_rule[f.rule] = by_rule.get(f.rule, 0) + 1
    return {"findings": len(findings), "by_rule": by_rule}


def summary_line(findings: Sequence[Finding], checked: int, records: int, *, skipped: int = 0, failed: int = 0,
                 report: str | None = None) -> str:
    """The one line that ends a rules run on the console: what was checked and what was found.

    ``debugger: 12 rules checked over 7 collections (4 GPU-only rules not run), no findings``, or
    ``debugger: ... 2 findings (1 error, 1 warning): see RUN/debug/report.md``.

    :param findings: the findings made.
    :param checked: rules that ran to the end.
    :param records: collection records the rules saw.
    :param skipped: rules not run because they need another device.
    :param failed: rules switched off after an error.
    :param report: where the report is, named when there are findings.
    """
    notes = [f"{skipped} GPU-only rule{_s(skipped)} not run"] if skipped else []
    notes += [f"{failed} rule{_s(failed)} switched off after an error"] if failed else []
    head = f"debugger: {checked} rule{_s(checked)} checked over {records} collection{_s(records)}"
    head += f" ({', '.join(notes)})" if notes else ""
    if not findings:
        return f"{head}, no findings"
    counts = {s: sum(f.severity == s for f in findings) for s in ("error", "warning", "info")}
    by_severity = ", ".join(f"{n} {s}{_s(n)}" for s, n in counts.items() if n)
    see = f": see {report}" if report else ""
    return f"{head}, {len(findings)} finding{_s(len(findings))} ({by_severity}){see}"


def _s(n: int) -> str:
    return "" if n == 1 else "s"
