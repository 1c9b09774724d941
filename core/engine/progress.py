"""A one-line progress display with samples/s and ETA, silent unless stderr is a terminal."""

from __future__ import annotations

import sys
import time


class Progress:
    def __init__(self, total_steps: int, *, enabled: bool, start_step: int = 0) -> None:
        self.total = total_steps
        self.enabled = enabled and sys.stderr.isatty()
        self.start_step = start_step
        self.start = time.perf_counter()
        self.last_draw = 0.0

    def update(self, step: int, epoch: int, loss: float | None, samples_per_s: float) -> None:
        if not self.enabled:
            return
        now = time.perf_counter()
        if now - self.last_draw < 0.25 and step < self.total:
            return
        self.last_draw = now
        done = step - self.start_step
        rate = done / (now - self.start) if done else 0.0
        eta = (self.total - step) / rate if rate else 0.0
        loss_text = f" loss {loss:.4f}" if loss is not None else ""
        line = (
            f"\repoch {epoch + 1} step {step}/{self.total}{loss_text} "
            f"{samples_per_s:,.1f} samples/s ETA {int(eta) // 60}:{int(eta) % 60:02d}"
        )
        sys.stderr.write(line.ljust(78))
        sys.stderr.flush()

    def close(self) -> None:
        if self.enabled:
            sys.stderr.write("\n")
            sys.stderr.flush()
