"""Evaluation: loss and metrics over a split, reduced across processes."""

from __future__ import annotations

import inspect
import json
import time
from pathlib import Path
from typing import Any

import torch  # evaluates torch models; only runs import this module

from ..errors import ConfigError
from .metrics import Metric
from .strategy import Strategy
from .tasks import Task


@torch.no_grad()
def evaluate(
    model: torch.nn.Module,
    task: Task,
    loader: Any,
    metrics: dict[str, Metric],
    strategy: Strategy,
    *,
    autocast: Any,
    channels_last: bool = False,
) -> dict[str, Any]:
    """``loss`` (mean over samples) and every metric over ``loader``."""
    was_training = model.training
    model.eval()
    for m in metrics.values():
        m.reset()
    loss_sum = torch.zeros(2, dtype=torch.float64)
    for batch in loader:
        batch = task.to_device(batch, strategy.device, channels_last)
        with autocast:
            loss, outputs = task.loss(model, batch)
        n = task.batch_size(batch)
        loss_sum += torch.tensor([float(loss) * n, n], dtype=torch.float64)
        for m in metrics.values():
            m.update(outputs, batch)
    model.train(was_training)
    loss_sum = strategy.reduce(loss_sum.to(strategy.device)).cpu()
    out = {"loss": float(loss_sum[0] / loss_sum[1]) if loss_sum[1] else float("nan")}
    for name, m in metrics.items():
        state = m.state.to(strategy.device)
        state = strategy.gather(state) if m.reduction == "cat" else strategy.reduce(state)
        out[name] = m.compute(state.cpu())
    return out


def evaluate_run(run_dir: str | Path, *, dataset: str | None = None, split: str = "test",
                 batch_size: int | None = None, device: str = "auto") -> dict[str, Any]:
    """Evaluate a finished run's model on a split of its dataset (or of ``dataset``).

    The result is also appended to ``RUN_DIR/evaluations.jsonl``, next to a report under
    ``RUN_DIR/reports/``; when either cannot be written (a read-only or full disk), the metrics are
    still returned, with a ``warnings`` list saying what was not written.

    :param batch_size: samples per batch, at least 1 (default: the run's batch size).
    :raises ConfigError: for a batch size below 1.
    """
    if batch_size is not None and batch_size < 1:
        raise ConfigError(f"--batch-size must be at least 1, got {batch_size} (leave it out for the run's batch size)")
    from .assembly import assemble_saved, load_saved
    from .data import make_loader
    from .run import autocast

    strategy = Strategy()
    strategy.setup(device)
    saved = load_saved(run_dir, device=strategy.device)
    entry, parts = assemble_saved(saved, dataset=dataset)
    data, task, config = parts.data, parts.task, saved.config
    loader = make_loader(data.split(split), batch_size=batch_size or config.get("batch_size", 32), shuffle=False,
                         seed=0, collate=data.collate)
    results = evaluate(parts.model, task, loader, parts.metrics, strategy,
                       autocast=autocast(config.get("precision", "fp32"), strategy.device))
    # a report that plots predictions (forecasts) also takes the model and the split, when it asks for them
    context = {"model": parts.model, "dataset": data.split(split), "device": strategy.device}
    accepted = inspect.signature(task.write_report).parameters
    warnings: list[str] = []
    report_dir = saved.path / "reports" / f"{split}-{entry.name}"
    try:
        files = task.write_report(results, data.info, report_dir, **{k: v for k, v in context.items() if k in accepted})
    except OSError as exc:  # a read-only or full disk must not cost the metrics just computed
        files = []
        warnings.append(f"the report was not written to {report_dir}: {exc.strerror or exc}")
    record = {"split": split, "dataset": entry.qualified_name, "time": time.time(), **results,
              "report": [str(f) for f in files]}
    try:
        with open(saved.path / "evaluations.jsonl", "a") as f:
            f.write(json.dumps(record) + "\n")
    except OSError as exc:
        warnings.append(f"the result was not recorded in {saved.path / 'evaluations.jsonl'}: {exc.strerror or exc}")
    return {**record, "warnings": warnings} if warnings else record
