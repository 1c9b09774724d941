"""Findings: what a rule saw, with the numbers behind it and what to do about it."""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

SEVERITIES = ("info", "warning", "error")


@dataclass(frozen=True)
class Finding:
    """One problem a rule found.

    :param rule: the rule's name (``vanishing_gradient``).
    :param step: the optimizer step at which it was found (0: before training).
    :param message: what was seen, in plain words, with the numbers.
    :param suggestion: what to try, in plain words.
    :param evidence: the numbers behind the message (layer names, values, thresholds).
    :param severity: ``info``, ``warning`` or ``error``.
    :param action: ``report`` or ``stop`` (the run was asked to stop because of it).
    """

    rule: str
    step: int
    message: str
    suggestion: str
    evidence: dict[str, Any] = field(default_factory=dict)
    severity: str = "warning"
    action: str = "report"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Finding:
        return cls(**{k: data[k] for k in ("rule", "step", "message", "suggestion", "evidence", "severity", "action")
                      if k in data})

    def line(self) -> str:
        """One console line: rule, step, what was seen and what to do."""
        stop = " The run stops here." if self.action == "stop" else ""
        return f"[{self.severity}] {self.rule} at step {self.step}: {self.message}. Suggestion: {self.suggestion}.{stop}"

    def markdown(self) -> str:
        evidence = ", ".join(f"{k} = {_short(v)}" for k, v in self.evidence.items())
        stop = " **The run was stopped.**" if self.action == "stop" else ""
        text = f"- **{self.rule}** at step {self.step} ({self.severity}): {self.message}.{stop}\n"
        text += f"  - Suggestion: {self.suggestion}.\n"
        if evidence:
            text += f"  - Evidence: {evidence}\n"
        return text


def _short(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, list) and len(value) > 8:
        return json.dumps(value[:8])[:-1] + ", ...]"
    if isinstance(value, dict) and len(value) > 8:
        items = list(value.items())[:8]
        return "{" + ", ".join(f"{k}: {_short(v)}" for k, v in items) + ", ...}"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_short(v)}" for k, v in value.items()) + "}"
    return json.dumps(value) if not isinstance(value, str) else value


def read_findings(path: str | Path) -> list[Finding]:
    """The findings of a ``findings.jsonl`` file (lines cut short by a kill are skipped)."""
    out: list[Finding] = []
    p = Path(path)
    if not p.exists():
        return out
    for line in p.read_text().splitlines():
        try:
            out.append(Finding.from_dict(json.loads(line)))
        except (ValueError, TypeError, KeyError):
            continue
    return out


def fmt(value: float) -> str:
    """A number as people read it: 3 significant digits, scientific when tiny or huge."""
    if math.isnan(value):
        return "NaN"
    if value in (float("inf"), float("-inf")):
        return "Inf" if value > 0 else "-Inf"
    if value != 0 and (abs(value) < 1e-3 or abs(value) >= 1e5):
        return f"{value:.2e}"
    return f"{value:.3g}"


def names(items: list[str], limit: int = 3) -> str:
    """``a, b, c and 4 more``."""
    shown = ", ".join(items[:limit])
    return shown + (f" and {len(items) - limit} more" if len(items) > limit else "")
