"""The live debugger of one run: collection, rules, and where findings go.

The plugin's ``on_run_start`` creates a :class:`Debugger` for a run that names rules and
registers it on the plugin manager for that run only; it observes the run through the public
per-step hooks (``wrap_train_loader``, ``before_optimizer_step``, ``on_batch_end``) and lifecycle
hooks, and unregisters itself in ``on_run_end``. Runs without rules pay nothing.

Files in the run directory::

    findings.jsonl      one finding per line, as found
    debug/info.json     facts rules start from: device, batch size, parameters, class counts, rules
    debug/stats.jsonl   one collection record per line (see bestiary.debug.collect)
    debug/report.md     the report, when the run ends

Findings also go to the console (stderr, main process) and to the ``on_finding`` hook (the
TensorBoard plugin writes them as text).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Generator, Iterable, Mapping
from pathlib import Path
from typing import Any

from bestiary import hookimpl
from bestiary.extend import DEBUG_INFO_FILE as INFO
from bestiary.extend import DEBUG_REPORT_FILE as REPORT
from bestiary.extend import DEBUG_STATS_FILE as STATS
from bestiary.extend import FINDINGS_FILE as FINDINGS
from bestiary.extend import Finding, Rule, RuleRunner, class_counts, debug_summary_line
from bestiary.extend import render_debug_report as render

from .collect import Collector


class Debugger:
    """Created at run start when a run names rules; lives until the run ends.

    :param run: the run's context.
    :param host: the plugin host (its hooks receive findings; this object joins them for the run).
    :param rules: the built rules.
    :param every: collect a full record every this many optimizer steps (and at step 1).
    :param train_set: the training split (for class counts).
    :param info: the dataset's info.
    :param total_steps: optimizer steps the run will take.
    """

    def __init__(self, run: Any, host: Any, rules: list[Rule], *, every: int, train_set: Any,
                 info: Mapping[str, Any], total_steps: int) -> None:
        cfg = run.config
        self.run, self.host, self.every = run, host, every
        self.path = Path(run.path)
        self.runner = RuleRunner(rules, self._emit, run.strategy.device.type)
        # a compiled model would recompile for hooks added between steps: no activations, no forward split
        self.collector = Collector(run.model, every=self.every, needs=self.runner.needs(),
                                   device=run.strategy.device, start_step=run.resumed_step, hooks=not cfg.compile)
        self.records = 0
        (self.path / "debug").mkdir(parents=True, exist_ok=True)
        if run.resumed_step:
            _truncate(self.path / STATS, run.resumed_step)
            _truncate(self.path / FINDINGS, run.resumed_step)
        self.info = {
            "device": run.strategy.device.type, "batch_size": cfg.batch_size * cfg.accumulate,
            "every": self.every, "log_every": cfg.log_every, "total_steps": total_steps,
            "world_size": run.strategy.world_size, "topology": run.strategy.topology.as_dict(),
            "params": _param_info(run.model, self.collector.params),
            "labels": class_counts(train_set, info) if "labels" in self.runner.needs() else None,
            "rules": {r.name: {"action": r.action, **r.params()} for r in rules},
        }
        (self.path / INFO).write_text(json.dumps(self.info, indent=1) + "\n")
        self._name = f"debugger-{id(self)}"
        host.pm.register(self, name=self._name)
        self.runner.start(self.info)

    # -- per-step hooks, for this run only ----------------------------------------------------------

    @hookimpl(wrapper=True)
    def wrap_train_loader(self, run: Any, loader: Iterable[Any]) -> Generator[None, Iterable[Any], Iterable[Any]]:
        inner = yield
        return self.collector.timed(inner) if run is self.run else inner

    @hookimpl
    def before_optimizer_step(self, run: Any, step: int, loss: Any) -> None:
        if run is self.run:
            self.collector.after_backward(loss)

    @hookimpl
    def on_batch_end(self, run: Any, step: int, loss: Any, stepped: bool) -> None:
        if stepped and run is self.run:
            record = self.collector.after_step()
            if record is not None:
                self._record(record)

    def _record(self, record: dict[str, Any]) -> None:
        self.records += 1
        with open(self.path / STATS, "a") as f:
            f.write(json.dumps(record) + "\n")
        self.runner.observe(record)

    # -- lifecycle hooks, for this run only ---------------------------------------------------------

    @hookimpl
    def on_step_end(self, run: Any, step: int, metrics: dict[str, float]) -> None:
        if run is self.run:
            self.runner.metrics(step, "train", metrics)

    @hookimpl
    def on_evaluation_end(self, run: Any, step: int, split: str, metrics: dict[str, float]) -> None:
        if run is self.run:
            self.runner.metrics(step, split, metrics)

    @hookimpl
    def on_run_end(self, run: Any, status: str, summary: dict[str, Any]) -> None:
        if run is not self.run:
            return
        if self.host.pm.is_registered(self):
            self.host.pm.unregister(self, name=self._name)
        last = self.collector.flush()  # the steps after the last collection are judged too
        if last is not None:
            self._record(last)
        runner = self.runner
        (self.path / REPORT).write_text(render(
            runner.findings, runner.rules, title=f"Debugger report: {self.path.name} ({status})", every=self.every,
            records=self.records, skipped=runner.skipped, errors=runner.errors, stop_reason=summary.get("stop_reason")))
        # always said, findings or not: a quiet run shows what was checked
        _echo(debug_summary_line(runner.findings, len(runner.rules), self.records, skipped=len(runner.skipped),
                                 failed=len(runner.errors), report=str(self.path / REPORT)))

    # -- findings -----------------------------------------------------------------------------------

    def _emit(self, finding: Finding) -> None:
        with open(self.path / FINDINGS, "a") as f:
            f.write(json.dumps(finding.to_dict()) + "\n")
        _echo(finding.line())
        self.host.pm.hook.on_finding(run=self.run, finding=finding.to_dict())
        if finding.action == "stop":
            self.run.request_stop(f"debugger rule {finding.rule}: {finding.message}")


def _param_info(model: Any, params: list[tuple[str, Any]]) -> dict[str, dict[str, Any]]:
    """Shape and owning module class of each trained parameter (rules judge layers by kind)."""
    owners = {}
    for name, module in model.named_modules():
        for pname, _ in module.named_parameters(recurse=False):
            owners[f"{name}.{pname}" if name else pname] = type(module).__name__
    return {n: {"shape": list(p.shape), "module": owners.get(n, "")} for n, p in params}


def _echo(line: str) -> None:
    sys.stderr.write(("\n" if sys.stderr.isatty() else "") + line + "\n")  # below a progress line
    sys.stderr.flush()


def _truncate(path: Path, step: int) -> None:
    """Drop lines a resumed run will write again (after its checkpoint's ``step``)."""
    if not path.exists():
        return
    kept = []
    for line in path.read_text().splitlines():
        try:
            if json.loads(line).get("step", 0) <= step:
                kept.append(line)
        except ValueError:
            continue
    path.write_text("".join(k + "\n" for k in kept))
