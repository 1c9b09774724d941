"""What a model's forward must return for the built-in tasks, and a one-line hint when it does not.

The task adapter calls the model, so a wrong return type surfaces as an error deep inside the
task's loss (``Tensor.__contains__ only supports Tensor``, ``KeyError: 'mean'``); these helpers
look at what the model itself returned and name the contract it broke.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch  # the checks run models; `import bestiary.testing` does not import this

from ..registry import Entry
from .report import ConformanceError

#: The forward contract of each built-in task, as the hint states it.
CONTRACTS = {
    "image-classification": "forward(images [B, C, H, W]) must return the logits [B, num_classes] as one tensor",
    "forecasting": (
        "forward(batch) must return a dict: 'mean' [B, prediction_length], optionally 'quantiles' "
        "[B, Q, prediction_length] with 'levels' (Q floats), and 'loss' (a scalar) when the batch has future_target"
    ),
}


def _model_input(task_name: str | None, batch: Any) -> Any:
    return batch[0] if task_name == "image-classification" else batch


def forward_hint(
    task_name: str | None, model: torch.nn.Module, batch: Any, info: Mapping[str, Any]
) -> str | None:
    """Why the task's loss failed on this model, when the model's own output shows it; else ``None``.

    Called only after a failure: it runs the forward pass once more, outside the task.
    """
    contract = CONTRACTS.get(task_name or "")
    if contract is None:
        return None
    inputs = _model_input(task_name, batch)
    try:
        with torch.no_grad():
            out = model(inputs)
    except Exception:  # noqa: BLE001  (the model itself fails: most often it is built for other inputs)
        if isinstance(inputs, torch.Tensor):
            shown = f"images {list(inputs.shape)}"
        else:
            shown = f"a batch with past_target {list(inputs['past_target'].shape)}"
        return (
            f"the model itself fails on {shown} made from info {dict(info)}; if it is built for other inputs, "
            "declare them: metadata={'conformance': {'info': {...}}}"
        )
    return output_problem(task_name, out, info, len_of(task_name, batch), training=model.training)


def len_of(task_name: str | None, batch: Any) -> int:
    first = batch[0] if task_name == "image-classification" else batch["past_target"]
    return int(first.shape[0])


def output_problem(
    task_name: str | None, out: Any, info: Mapping[str, Any], n: int, *, training: bool
) -> str | None:
    """What is wrong with a model's output for a batch of ``n`` samples, or ``None``."""
    contract = CONTRACTS.get(task_name or "")
    if contract is None:
        return None
    if task_name == "image-classification":
        classes = info.get("num_classes")
        if not isinstance(out, torch.Tensor):
            return f"forward returned {type(out).__name__}; {contract}"
        if isinstance(classes, int) and list(out.shape) != [n, classes]:
            return f"forward returned shape {list(out.shape)}, expected [{n}, {classes}]; {contract}"
        return None
    if not isinstance(out, Mapping):
        return f"forward returned {type(out).__name__}, not a dict; {contract}"
    if training and "loss" in out:
        return None  # a model with its own loss may skip the forecasts while training
    if "mean" not in out:
        return f"forward returned keys {sorted(out)} without 'mean'; {contract}"
    horizon = info.get("prediction_length")
    if (
        isinstance(out["mean"], torch.Tensor)
        and isinstance(horizon, int)
        and list(out["mean"].shape) != [n, horizon]
    ):
        return f"'mean' has shape {list(out['mean'].shape)}, expected [{n}, {horizon}]; {contract}"
    if training and "quantiles" in out:
        return (
            "forward returns 'quantiles' but no 'loss': the task then trains on the error of 'mean' alone and the "
            "quantile head gets no gradient; return out['loss'] (a pinball loss over the quantiles) when the batch "
            "has future_target"
        )
    return None


def check_outputs(
    entry: Entry,
    check: str,
    task_name: str | None,
    out: Any,
    info: Mapping[str, Any],
    n: int,
    *,
    training: bool,
) -> None:
    """Fail ``check`` when the outputs break the task's forward contract."""
    problem = output_problem(task_name, out, info, n, training=training)
    if problem:
        detail, _, hint = problem.partition("; ")
        raise ConformanceError(entry, check, detail, hint or None)
