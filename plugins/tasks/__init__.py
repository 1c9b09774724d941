"""Built-in image classification task and its default metric (forecasting lives in the time-series plugin)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from bestiary import hookimpl

if TYPE_CHECKING:
    from bestiary.extend import Register

_HERE = "bestiary.plugins.tasks"


@hookimpl
def register_tasks(register: Register) -> None:
    register("image-classification", f"{_HERE}.classification:ImageClassification",
             description="Images to one of N classes; cross-entropy loss, logits as outputs")


@hookimpl
def register_metrics(register: Register) -> None:
    register("accuracy", f"{_HERE}.classification:Accuracy", task="image-classification",
             description="Top-1 accuracy", metadata={"higher_is_better": True})
