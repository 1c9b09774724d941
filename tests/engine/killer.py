"""A test plugin that signals its own process at a chosen moment of a run.

``BESTIARY_TEST_SIGNAL=HOOK@STEP#NTH=SIGNAME``: on the ``NTH`` call of ``HOOK`` (``checkpoint``:
``on_checkpoint_saved``, ``batch``: ``on_batch_start``) at ``STEP``, send ``SIGNAME`` to this
process (SIGKILL: it dies there, as in a power cut; SIGTERM: the run stops as asked).
"""

from __future__ import annotations

import os
import signal
from typing import Any

from bestiary import hookimpl

_calls: dict[tuple[str, int], int] = {}


def _maybe_signal(hook: str, step: int) -> None:
    spec = os.environ.get("BESTIARY_TEST_SIGNAL")
    if not spec:
        return
    where, name = spec.split("=")
    target, rest = where.split("@")
    at, nth = (int(x) for x in rest.split("#"))
    if (hook, step) != (target, at):
        return
    _calls[hook, step] = _calls.get((hook, step), 0) + 1
    if _calls[hook, step] == nth:
        os.kill(os.getpid(), getattr(signal, name))


@hookimpl
def on_checkpoint_saved(run: Any, step: int, path: Any) -> None:
    _maybe_signal("checkpoint", step)


@hookimpl
def on_batch_start(run: Any, step: int, batch: Any) -> None:
    _maybe_signal("batch", step)
