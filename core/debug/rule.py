"""The rule base class, and choosing rules for a run by name.

A rule is a registry entry of the kind ``rules`` (hook ``register_rules``) whose factory returns a
:class:`Rule`. Rules are plain Python working on numbers already on the host: they never import
torch, so they run the same live (inside the training loop) and offline (``bestiary debug``).
"""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError
from .findings import SEVERITIES, Finding

if TYPE_CHECKING:
    from ..host import PluginHost
    from ..registry import Entry

ACTIONS = ("report", "stop")
#: What a rule can ask the engine to collect at each collection step.
NEEDS = ("gradients", "weights", "updates", "activations", "timing", "system", "labels")


class Rule:
    """Base class of debugger rules.

    Subclasses take their parameters as keyword arguments (documented in their docstring; the
    registry entry's ``defaults`` show them) and override what they watch:

    - :meth:`start` once, with facts about the run (device, batch size, class counts);
    - :meth:`observe` with each collection record (every ``debug_every`` steps);
    - :meth:`metrics` with each training record (every ``log_every`` steps) and each evaluation.

    Each returns findings made with :meth:`finding`, which reports each ``key`` (a layer, a
    condition) once per run, so a lasting problem is not repeated at every step.

    :cvar needs: what the engine must collect for this rule (see :data:`NEEDS`).
    :cvar device: ``"cuda"`` for rules that only mean something on a GPU, else ``None``.
    :param action: ``report`` (default) or ``stop``: also end the run, with a checkpoint.
    """

    needs: tuple[str, ...] = ()
    device: str | None = None
    severity = "warning"

    def __init__(self, *, action: str = "report") -> None:
        if action not in ACTIONS:
            raise ConfigError(f"rule action {action!r} is not one of {', '.join(ACTIONS)}")
        self.action = action
        self.name = _snake(type(self).__name__)
        self._reported: set[Any] = set()

    # -- what subclasses override ---------------------------------------------------------------

    def start(self, info: Mapping[str, Any]) -> Iterable[Finding]:
        """Called once before the first step.

        :param info: ``device`` (``cpu``, ``cuda``), ``batch_size``, ``every`` (collection interval),
            ``params`` (name -> ``{"shape": [...]}``), ``labels`` (``{"counts": [...], "classes": [...]}``
            when the dataset has class labels), ``log_every``, ``total_steps``.
        """
        return ()

    def observe(self, record: Mapping[str, Any]) -> Iterable[Finding]:
        """Called with each collection record (see :mod:`bestiary.debug.collect` for its keys)."""
        return ()

    def metrics(self, step: int, split: str, values: Mapping[str, float]) -> Iterable[Finding]:
        """Called with each training record (``split`` ``train``) and evaluation (``validation``)."""
        return ()

    # -- helpers --------------------------------------------------------------------------------

    def finding(self, key: Any, step: int, message: str, suggestion: str, evidence: dict[str, Any] | None = None,
                severity: str | None = None) -> list[Finding]:
        """A finding for ``key`` unless one was already made for it (then an empty list)."""
        if key in self._reported:
            return []
        self._reported.add(key)
        severity = severity or self.severity
        if severity not in SEVERITIES:
            raise ConfigError(f"severity {severity!r} is not one of {', '.join(SEVERITIES)}")
        return [Finding(self.name, int(step), message, suggestion, dict(evidence or {}), severity, self.action)]

    def params(self) -> dict[str, Any]:
        """This rule's parameters and their values."""
        names = [p for p in inspect.signature(type(self)).parameters if p != "self"]
        return {n: getattr(self, n) for n in names if hasattr(self, n)}


def _snake(name: str) -> str:
    out = "".join("_" + c.lower() if c.isupper() else c for c in name)
    return out.lstrip("_")


def parse_rules(spec: str) -> list[tuple[str, str | None]]:
    """``"default,dead_relu:stop"`` -> ``[("default", None), ("dead_relu", "stop")]``."""
    items = []
    for raw in spec.split(","):
        item = raw.strip()
        if not item:
            continue
        action = None
        head, sep, tail = item.rpartition(":")
        if sep and tail in ACTIONS:
            item, action = head, tail
        items.append((item, action))
    if not items:
        raise ConfigError("--rules is empty; pass default, all, or rule names (see `bestiary list rules`)")
    return items


def select_rules(spec: str, host: PluginHost | None = None,
                 options: Mapping[str, Mapping[str, Any]] | None = None, *, strict: bool = True) -> list[Rule]:
    """Build the rules that ``spec`` names.

    :param spec: comma-separated: ``default`` (the rules tagged ``default``), ``all``, or rule names
        (bare or ``plugin:name``), each optionally followed by ``:stop`` or ``:report`` to set its action.
    :param host: plugin host (default: the process-wide one).
    :param options: rule name -> parameters overriding the entry's defaults
        (``{"vanishing_gradient": {"threshold": 1e-8}}``, from the run's ``[options.debugger] rule_options``).
    :param strict: refuse options for rules ``spec`` does not choose (a replay of fewer rules than
        the run used passes ``False`` to ignore the others' saved options).
    :raises ConfigError: bad parameters or actions; unknown names raise the registry's lookup error,
        which offers close matches.
    """
    from ..host import get_host

    table = (host or get_host()).registry.table("rules")
    chosen: dict[str, tuple[Entry, str | None]] = {}
    for name, action in parse_rules(spec):
        if name in ("default", "all"):
            entries = [e for e in table if name == "all" or "default" in e.tags]
        else:
            entries = [table.get(name)]
        for e in entries:
            previous = chosen.get(e.qualified_name, (e, None))[1]
            chosen[e.qualified_name] = (e, action or previous)
    options = dict(options or {})
    rules = []
    for qualified, (entry, action) in chosen.items():
        params = dict(options.pop(entry.name, {}) or {})
        params.update(options.pop(qualified, {}) or {})
        if action is not None:
            params["action"] = action
        rules.append(build_rule(entry, params))
    if options and strict:
        unknown = sorted(options)
        close = difflib.get_close_matches(unknown[0], [e.name for e, _ in chosen.values()], n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ConfigError(f"debugger.rule_options names rules this run does not use: {', '.join(unknown)}.{hint} "
                          f"Rules of this run: {', '.join(e.name for e, _ in chosen.values())}")
    return rules


def build_rule(entry: Entry, params: Mapping[str, Any]) -> Rule:
    """Build one rule from its entry, checking ``params`` against what the rule accepts."""
    factory = entry.load()
    try:
        accepted = list(inspect.signature(factory).parameters)
    except (TypeError, ValueError):
        accepted = []
    unknown = [k for k in params if accepted and k not in accepted]
    if unknown:
        close = difflib.get_close_matches(unknown[0], accepted, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ConfigError(f"rule {entry.name!r} has no parameter {unknown[0]!r}.{hint} "
                          f"Its parameters: {', '.join(accepted)} (see `bestiary info {entry.name} --kind rules`)")
    rule = entry.build(**params)
    if not isinstance(rule, Rule):
        raise TypeError(f"rule {entry.qualified_name!r} built {type(rule).__name__}, not a bestiary.debug.Rule; "
                        f"report it to {entry.provenance.distribution}")
    rule.name = entry.name
    return rule
