"""Built-in image classification task and its default metric (forecasting lives in the time-series plugin)."""

from __future__ import annotations

from bestiary import hookimpl

_HERE = "bestiary.plugins.tasks"


@hookimpl
def register_tasks(register):  # type: ignore[no-untyped-def]
    register("image-classification", f"{_HERE}.classification:ImageClassification",
             description="Images to one of N classes; cross-entropy loss, logits as outputs")


@hookimpl
def register_metrics(register):  # type: ignore[no-untyped-def]
    register("accuracy", f"{_HERE}.classification:Accuracy", task="image-classification",
             description="Top-1 accuracy", metadata={"higher_is_better": True})
