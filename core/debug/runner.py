"""Feeding rules: the same code serves a live run and an offline replay."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from .findings import Finding
from .rule import Rule

log = logging.getLogger("bestiary")


class RuleRunner:
    """Runs ``rules`` on events in step order and hands each new finding to ``emit``.

    A rule that raises is switched off for the rest of the run (with a warning) instead of ending
    the training: a broken rule must not cost a run.

    :param rules: the rules.
    :param emit: called with each finding as it is made.
    :param device: the run's device type (``cpu``, ``cuda``); rules for another device stay silent.
    """

    def __init__(self, rules: list[Rule], emit: Callable[[Finding], None], device: str) -> None:
        self.rules = [r for r in rules if r.device is None or r.device == device]
        self.skipped = [r for r in rules if r not in self.rules]
        self.emit = emit
        self.findings: list[Finding] = []
        self.errors: dict[str, str] = {}

    def needs(self) -> set[str]:
        return {n for r in self.rules for n in r.needs}

    def start(self, info: Mapping[str, Any]) -> None:
        self._each(lambda r: r.start(info))

    def observe(self, record: Mapping[str, Any]) -> None:
        self._each(lambda r: r.observe(record))

    def metrics(self, step: int, split: str, values: Mapping[str, float]) -> None:
        self._each(lambda r: r.metrics(step, split, values))

    def _each(self, call: Callable[[Rule], Iterable[Finding] | None]) -> None:
        for rule in list(self.rules):
            try:
                found = list(call(rule) or ())
            except Exception as exc:  # noqa: BLE001  keep training; say which rule broke and why
                self.rules.remove(rule)
                self.errors[rule.name] = f"{type(exc).__name__}: {exc}"
                log.warning("bestiary: debugger rule %s failed and is switched off: %s", rule.name, exc)
                continue
            for finding in found:
                self.findings.append(finding)
                self.emit(finding)
