"""The plugin module named by the ``bestiary`` entry point: registrations only, no torch."""

from __future__ import annotations

from bestiary import hookimpl

TASK = "tabular-classification"


@hookimpl
def register_architectures(register):
    register(
        "tiny_mlp",
        "bestiary_example.models:build_mlp",
        task=TASK,
        description="Two-layer perceptron for feature vectors",
        tags=("mlp", "tiny"),
        defaults={"in_features": 8, "hidden": 16, "num_classes": 3},
        search_space={"model.hidden": {"type": "categorical", "choices": [8, 16, 32, 64]}},
        metadata={"input": "float tensor (N, in_features)", "output": "logits (N, num_classes)"},
    )


@hookimpl
def register_datasets(register):
    register(
        "synthetic_blobs",
        "bestiary_example.data:make_blobs",
        task=TASK,
        description="Gaussian blobs around random centres, generated from a seed",
        tags=("synthetic", "tiny"),
        defaults={"num_samples": 256, "num_features": 8, "num_classes": 3, "seed": 0},
        metadata={"splits": ["train", "test"]},
    )


@hookimpl
def register_metrics(register):
    register(
        "accuracy",
        "bestiary_example.metrics:Accuracy",
        task=TASK,
        description="Fraction of samples whose highest score is the target class",
        tags=("classification",),
        metadata={"higher_is_better": True},
    )


@hookimpl
def register_strategies(register):
    register(
        "local",
        "bestiary_example.strategy:LocalStrategy",
        description="Everything in this process, on one device",
        tags=("single-process",),
        defaults={"device": "cpu"},
        metadata={"min_world_size": 1, "max_world_size": 1},
    )
