"""The training state a checkpoint holds: loop position, best value, throughput, RNG streams."""

from __future__ import annotations

import dataclasses
import random
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch  # RNG states are torch tensors; only runs import this module

from ..errors import CheckpointError


@dataclass
class TrainState:
    """Where a run stands; saved in every checkpoint and restored on resume.

    :ivar step: optimizer steps done.
    :ivar epoch: epochs done.
    :ivar batch_in_epoch: loader batches (micro-batches) consumed in the current epoch.
    :ivar best: best value of the monitored metric so far, or ``None`` before the first evaluation.
    :ivar best_step: the step of :attr:`best`.
    :ivar bad_evals: evaluations in a row without improvement (for early stopping).
    :ivar samples: training samples counted at log steps (all processes).
    :ivar train_time: seconds spent training, counted at log steps.
    :ivar last_eval: the latest validation results (``loss`` and metrics), empty before one.
    :ivar closed_at: the step at which the trainer last closed an epoch or the run (with the
        evaluation due there), ``None`` before; a run resumed from a checkpoint of its last step
        that was written before that closing (and its evaluation) does it then.
    """

    step: int = 0
    epoch: int = 0
    batch_in_epoch: int = 0
    best: float | None = None
    best_step: int | None = None
    bad_evals: int = 0
    samples: int = 0
    train_time: float = 0.0
    last_eval: dict[str, Any] = field(default_factory=dict)
    closed_at: int | None = None

    def state_dict(self) -> dict[str, Any]:
        """The fields as a plain dict (the ``state`` entry of a checkpoint's extra data)."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore the fields from :meth:`state_dict` output.

        :raises ValueError: a key this class does not know (a checkpoint from another program).
        """
        known = {f.name for f in dataclasses.fields(self)}
        unknown = sorted(set(state) - known)
        if unknown:
            raise CheckpointError(f"unknown training state keys {unknown}; this checkpoint was not written by bestiary")
        for key, value in state.items():
            setattr(self, key, dict(value) if key == "last_eval" else value)

    def improves(self, value: float, mode: str) -> bool:
        """Whether ``value`` beats :attr:`best` in ``mode`` (``max`` or ``min``)."""
        if self.best is None:
            return True
        return value > self.best if mode == "max" else value < self.best


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def rng_state() -> dict[str, Any]:
    legacy: Any = np.random.get_state()  # the legacy tuple (typed as a union with the dict form)
    kind, keys, pos, has_gauss, gauss = legacy
    state = {
        "python": random.getstate(),
        "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, gauss],
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    kind, keys, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, gauss))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
