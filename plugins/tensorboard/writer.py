"""One run's TensorBoard event file: scalars as the run goes, HParams when it ends.

Imported by the hooks of :mod:`bestiary.plugins.tensorboard` only, once a run starts.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

# Imports torch: this module is loaded by the run hooks only, never when plugins are listed.
from torch.utils.tensorboard import SummaryWriter
from torch.utils.tensorboard.summary import hparams

#: ``on_run_end`` status -> hparams ``Status`` name (early stopping is a normal end).
SESSION_STATUS = {"completed": "STATUS_SUCCESS", "stopped": "STATUS_SUCCESS", "failed": "STATUS_FAILURE"}

_EVENT_TIME = re.compile(r"\.tfevents\.(\d+)\.")


class RunWriter:
    """Writes the event file of one run into ``RUN_DIR/tensorboard``.

    :param run_dir: the run directory.
    :param resumed_step: optimizer steps restored from a checkpoint (0 for a fresh start).
    """

    def __init__(self, run_dir: Path, resumed_step: int = 0) -> None:
        self.logdir = Path(run_dir) / "tensorboard"
        earlier = sorted(self.logdir.glob("*tfevents*")) if self.logdir.is_dir() else []
        purge_step = None
        if earlier:
            # A resumed (or restarted) run replays every step after its checkpoint: the SessionLog.START
            # written for purge_step hides what the earlier process logged at that step and after.
            purge_step = resumed_step
            _wait_for_next_second(earlier)
        self.writer = SummaryWriter(log_dir=str(self.logdir), purge_step=purge_step)
        if earlier and resumed_step > 0:
            self._restore_train_step(Path(run_dir) / "metrics.jsonl", resumed_step)

    def scalars(self, prefix: str, step: int, metrics: dict[str, Any], walltime: float | None = None) -> None:
        for name, value in metrics.items():
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                self.writer.add_scalar(f"{prefix}/{name}", value, global_step=step, walltime=walltime)

    def finding(self, finding: dict[str, Any]) -> None:
        """A debugger finding as Markdown text under ``debugger/<rule>``, and the count of findings so far."""
        self.findings = getattr(self, "findings", 0) + 1
        step = int(finding.get("step", 0))
        text = (f"**{finding.get('severity', 'warning')}**: {finding.get('message', '')}.\n\n"
                f"Suggestion: {finding.get('suggestion', '')}.")
        self.writer.add_text(f"debugger/{finding.get('rule', 'rule')}", text, global_step=step)
        self.writer.add_scalar("debugger/findings", self.findings, global_step=step)

    def flush(self) -> None:
        self.writer.flush()

    def finish(self, hparam_values: dict[str, Any], status: str, summary: dict[str, Any]) -> None:
        """Write the HParams session of this run (into this run's own event file) and close it.

        An interrupted run writes none: TensorBoard keeps the first summary of each tag in a run
        directory, so the session (and ``best/``) must come from the process that ends the run.
        """
        if status == "interrupted":
            self.close()
            return
        metric_tags = [f"validation/{name}" for name, v in (summary.get("final") or {}).items()
                       if isinstance(v, (int, float))]
        best = summary.get("best") or {}
        if isinstance(best.get("value"), (int, float)):
            tag = f"best/{best['metric']}"
            self.writer.add_scalar(tag, best["value"], global_step=best.get("step") or 0)
            metric_tags.append(tag)
        # The dashboard reads each metric's value as the last point of the scalar of that tag.
        exp, ssi, sei = hparams(_hparam_values(hparam_values), dict.fromkeys(metric_tags, 0.0))
        _set_status(sei, SESSION_STATUS.get(status, "STATUS_UNKNOWN"))
        file_writer = self.writer.file_writer
        if file_writer is None:  # closed already: nothing to add the summary to
            return
        for part in (exp, ssi, sei):
            file_writer.add_summary(part)
        self.close()

    def close(self) -> None:
        self.writer.close()

    def _restore_train_step(self, metrics_log: Path, step: int) -> None:
        # purge_step also hides the training scalars of the checkpoint's own step, which the resumed
        # run does not log again; take them back from the run's metrics log (truncated to `step`).
        record = None
        if metrics_log.exists():
            for line in metrics_log.read_text().splitlines():
                try:
                    r = json.loads(line)
                except ValueError:
                    continue
                if r.get("split") == "train" and r.get("step") == step:
                    record = r
        if record is not None:
            values = {k: v for k, v in record.items() if k not in ("step", "epoch", "split", "time")}
            self.scalars("train", step, values, walltime=record.get("time"))


def _hparam_values(values: dict[str, Any]) -> dict[str, Any]:
    """Keep what the HParams plugin can show (numbers and strings); other values as text."""
    out: dict[str, Any] = {}
    for key, value in values.items():
        if value is None:
            continue
        out[key] = value if isinstance(value, (int, float, str)) else str(value)
    return out


def _set_status(session_end: Any, status: str) -> None:
    # summary.hparams always reports success; rewrite the status inside its plugin data.
    from tensorboard.plugins.hparams.api_pb2 import Status
    from tensorboard.plugins.hparams.plugin_data_pb2 import HParamsPluginData

    value = session_end.value[0]
    data = HParamsPluginData.FromString(value.metadata.plugin_data.content)
    data.session_end_info.status = Status.Value(status)
    data.session_end_info.end_time_secs = time.time()
    value.metadata.plugin_data.content = data.SerializeToString()


def _wait_for_next_second(earlier: list[Path]) -> None:
    # Event files are read in name order and names start with the creation second; a file created
    # in the same second as an earlier one may sort before it, and the purge would then come first.
    stamps = [int(m.group(1)) for p in earlier if (m := _EVENT_TIME.search(p.name))]
    wait = max(stamps, default=0) + 1 - time.time()
    if 0 < wait <= 2:
        time.sleep(wait)
