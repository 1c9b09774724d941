"""Built-in tasks (image classification, forecasting) and the metrics they report by default."""

from __future__ import annotations

from bestiary import hookimpl

_HERE = "bestiary.plugins.tasks"


@hookimpl
def register_tasks(register):  # type: ignore[no-untyped-def]
    register("image-classification", f"{_HERE}.classification:ImageClassification",
             description="Images to one of N classes; cross-entropy loss, logits as outputs")
    register("forecasting", f"{_HERE}.forecasting:Forecasting",
             description="Future values of a series from its past; quantile or point forecasts")


@hookimpl
def register_metrics(register):  # type: ignore[no-untyped-def]
    register("accuracy", f"{_HERE}.classification:Accuracy", task="image-classification",
             description="Top-1 accuracy", metadata={"higher_is_better": True})
    register("mae", f"{_HERE}.forecasting:MAE", task="forecasting",
             description="Mean absolute error of the mean forecast over observed points",
             metadata={"higher_is_better": False})
    register("rmse", f"{_HERE}.forecasting:RMSE", task="forecasting",
             description="Root mean squared error of the mean forecast over observed points",
             metadata={"higher_is_better": False})
