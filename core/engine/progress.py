"""Training progress on stderr: epoch, step, loss, samples/s and time left.

On a terminal one line is redrawn in place (at most four times a second); elsewhere (a log file, a
pipe, a benchmark sweep captured by CI) one line is written as each epoch ends, so a long run never
falls silent and its log stays short.
"""

from __future__ import annotations

import sys
import time


class Progress:
    """:param total_steps: optimizer steps of the run.
    :param enabled: draw anything at all (the trainer passes ``not quiet`` on the main process).
    :param start_step: the step a resumed run starts from (time left counts from here).
    """

    def __init__(self, total_steps: int, *, enabled: bool, start_step: int = 0) -> None:
        self.total = total_steps
        self.enabled = enabled
        self.terminal = sys.stderr.isatty()
        self.start_step = start_step
        self.start = time.perf_counter()
        self.last_draw = 0.0
        self.pending = ""  # not on a terminal: the latest line of the current epoch
        self.pending_epoch: int | None = None

    def update(self, step: int, epoch: int, loss: float | None, samples_per_s: float) -> None:
        if not self.enabled:
            return
        now = time.perf_counter()
        line = self._line(step, epoch, loss, samples_per_s, now)
        if self.terminal:
            if now - self.last_draw < 0.25 and step < self.total:
                return
            self.last_draw = now
            sys.stderr.write("\r" + line.ljust(78))
        else:
            if self.pending and epoch != self.pending_epoch:  # the previous epoch ended: its last line
                sys.stderr.write(self.pending + "\n")
            self.pending, self.pending_epoch = line, epoch
            if step >= self.total:
                self._flush_pending()
        sys.stderr.flush()

    def _flush_pending(self) -> None:
        if self.pending:
            sys.stderr.write(self.pending + "\n")
            self.pending = ""

    def _line(self, step: int, epoch: int, loss: float | None, samples_per_s: float, now: float) -> str:
        done = step - self.start_step
        rate = done / (now - self.start) if done else 0.0
        left = (self.total - step) / rate if rate else 0.0
        loss_text = f" loss {loss:.4f}" if loss is not None else ""
        return (f"epoch {epoch + 1} step {step}/{self.total}{loss_text} {samples_per_s:,.1f} samples/s "
                f"{int(left) // 60}:{int(left) % 60:02d} left")

    def close(self) -> None:
        if not self.enabled:
            return
        if self.terminal:
            sys.stderr.write("\n")
        else:  # a run stopped early: where it got to
            self._flush_pending()
        sys.stderr.flush()
