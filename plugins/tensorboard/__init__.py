"""The ``tensorboard`` plugin: every run writes TensorBoard event files into ``RUN_DIR/tensorboard/``.

What it writes, from the lifecycle hooks and on the main process only:

- ``train/loss``, ``train/lr``, ``train/samples_per_s`` (and ``train/grad_norm`` when gradients are
  clipped) at each logged optimizer step;
- ``validation/<metric>`` (``loss`` and every metric of the run) at each evaluation;
- each debugger finding as text under ``debugger/<rule>`` at its step, and the running count of
  findings as ``debugger/findings``;
- when the run ends, ``best/<monitor>`` at the best step, and the run's HParams session (its
  hyperparameters against the final ``validation/*`` values and ``best/<monitor>``; status success
  when completed or stopped early, failure when failed) in the same event file, so that pointing
  TensorBoard at a folder of runs (``tensorboard --logdir runs``) lists each run in the HParams
  dashboard. An interrupted run (SIGTERM) leaves its session to the resume that finishes it.

A resumed run purges what the interrupted process logged after its checkpoint (``purge_step``),
so curves carry no replayed steps twice.

Set ``BESTIARY_TENSORBOARD=0`` (or ``false``, ``no``, ``off``) to write nothing; block the plugin
as a whole with ``BESTIARY_DISABLE_PLUGINS=tensorboard``.
"""

from __future__ import annotations

import functools
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bestiary import hookimpl

if TYPE_CHECKING:
    from bestiary.extend import RunContext

    from .writer import RunWriter

ENV_TENSORBOARD = "BESTIARY_TENSORBOARD"

log = logging.getLogger("bestiary")

#: Open writers, one per run directory, from ``on_run_start`` to ``on_run_end``.
_writers: dict[str, RunWriter] = {}


@functools.lru_cache(maxsize=64)
def _resolved(path: str) -> str:
    return str(Path(path).resolve())


def _key(run: RunContext) -> str:
    # called on every logged step: resolving the path once per run keeps the hook cheap
    return _resolved(str(run.path))


def enabled() -> bool:
    return os.environ.get(ENV_TENSORBOARD, "1").strip().lower() not in {"0", "false", "no", "off"}


@hookimpl
def on_run_start(run: RunContext) -> None:
    if not run.is_main or not enabled():
        return
    stale = _writers.pop(_key(run), None)
    if stale is not None:  # an earlier run in this directory ended without on_run_end
        stale.close()
    try:
        # Loads torch.utils.tensorboard: only once a run starts, never when plugins are listed.
        from .writer import RunWriter
    except ImportError as exc:
        log.warning("bestiary: no TensorBoard events for this run (%s); pip install 'tensorboard>=2.14'", exc)
        return
    _writers[_key(run)] = RunWriter(run.path, run.resumed_step)


@hookimpl
def on_step_end(run: RunContext, step: int, metrics: dict[str, float]) -> None:
    writer = _writers.get(_key(run))
    if writer is not None:
        writer.scalars("train", step, metrics)


@hookimpl
def on_evaluation_end(run: RunContext, step: int, split: str, metrics: dict[str, float]) -> None:
    writer = _writers.get(_key(run))
    if writer is not None:
        writer.scalars(split, step, metrics)


@hookimpl
def on_finding(run: RunContext, finding: dict[str, Any]) -> None:
    writer = _writers.get(_key(run))
    if writer is not None:
        writer.finding(finding)


@hookimpl
def on_checkpoint_saved(run: RunContext, step: int, path: Path) -> None:
    # What a resumed run will not replay must be on disk before the process can be killed.
    writer = _writers.get(_key(run))
    if writer is not None:
        writer.flush()


@hookimpl
def on_run_end(run: RunContext, status: str, summary: dict[str, Any]) -> None:
    writer = _writers.pop(_key(run), None)
    if writer is not None:
        writer.finish(run.hparams, status, summary)
