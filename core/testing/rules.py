"""The conformance check of debugger rules: built from the entry, fed records of every kind."""

from __future__ import annotations

import inspect
from collections.abc import Iterable
from typing import Any

from ..registry import Entry
from ._support import Overrides, config, resolve, step
from .report import ConformanceError, Report


def sample_info() -> dict[str, Any]:
    """What a rule's ``start`` receives, for a two-layer model on the CPU."""
    return {"device": "cpu", "batch_size": 8, "every": 1, "log_every": 1, "total_steps": 6, "world_size": 1,
            "params": {"0.weight": {"shape": [4, 8], "module": "Linear"}, "0.bias": {"shape": [4], "module": "Linear"}},
            "labels": {"counts": [10, 12], "classes": ["a", "b"]}}


def sample_record(step_no: int) -> dict[str, Any]:
    """A collection record with every group filled, as the collector writes it."""
    tensor = {"mean": 0.01, "std": 0.3, "norm": 1.2, "rms": 0.3, "mean_abs": 0.2, "max_abs": 0.9}
    return {
        "step": step_no, "time": 0.0, "loss": 1.0 / step_no,
        "gradients": {"0.weight": dict(tensor), "0.bias": dict(tensor)},
        "weights": {"0.weight": dict(tensor), "0.bias": dict(tensor)},
        "updates": {"0.weight": 1e-3, "0.bias": 1e-3},
        "activations": {"1": {"mean": 0.4, "std": 0.5, "min": 0.0, "max": 2.0, "norm": 3.0, "zeros": 0.5,
                              "kind": "relu", "dead": 0.0}},
        "timing": {"data": 0.001, "forward": 0.01, "backward": 0.02, "optimizer": 0.005,
                   "steps": [[step_no - 1, 0.001, 0.03]] if step_no > 1 else []},
        "system": {"device": "cpu", "cpu_percent": 50.0, "process_cpu_percent": 90.0, "cpu_count": 2, "rss_mb": 500.0},
    }


def check_rule(entry: Entry | str, /, *, overrides: Overrides | None = None, **build_kwargs: Any) -> Report:
    """Check that a rule builds from its entry, takes the parameters its entry declares, and turns
    start facts, collection records and metrics into lists of findings without raising."""
    from ..debug.findings import Finding
    from ..debug.rule import ACTIONS, NEEDS, Rule

    entry = resolve("rules", entry)
    cfg = config(entry, overrides, build=build_kwargs)
    report = Report(entry)
    if cfg.skip:
        report.skipped = str(cfg.skip)
        return report
    with step(entry, "build"):
        rule = entry.build(**cfg.build)
    if not isinstance(rule, Rule):
        raise ConformanceError(entry, "build", f"the factory returned {type(rule).__name__}, not a Rule",
                               "subclass bestiary.debug.Rule")
    report.passed.append("build")
    accepted = set(inspect.signature(entry.load()).parameters)
    unknown = sorted(set(entry.defaults) - accepted)
    if unknown or "action" not in accepted:
        raise ConformanceError(entry, "parameters",
                               f"defaults {unknown} are not keyword arguments of the rule" if unknown
                               else "the rule takes no 'action' keyword", "pass action= on to Rule.__init__")
    bad = [n for n in rule.needs if n not in NEEDS]
    if bad or rule.action not in ACTIONS or rule.device not in (None, "cuda"):
        raise ConformanceError(entry, "parameters", f"needs {bad}, action {rule.action!r} or device {rule.device!r} "
                               f"is unknown", f"needs come from {', '.join(NEEDS)}; device is None or 'cuda'")
    report.passed.append("parameters")

    def findings(what: str, result: Iterable[Any] | None) -> None:
        items = list(result or ())
        wrong = [f for f in items if not isinstance(f, Finding) or not f.message or not f.suggestion]
        if wrong:
            raise ConformanceError(entry, what, f"returned {wrong[0]!r}, not a Finding with a message and a suggestion",
                                   "return self.finding(key, step, message, suggestion, evidence)")

    with step(entry, "start"):
        findings("start", rule.start(sample_info()))
    report.passed.append("start")
    with step(entry, "observe"):
        for i in range(1, 7):
            findings("observe", rule.observe(sample_record(i)))
            findings("observe", rule.metrics(i, "train", {"loss": 1.0 / i, "lr": 1e-3, "samples_per_s": 100.0}))
        findings("observe", rule.metrics(6, "validation", {"loss": 0.5, "accuracy": 0.8}))
    report.passed.append("observe")
    return report
