"""Hyperparameter search spaces of the vision families, for the tuner (JSON values only)."""

from __future__ import annotations

from typing import Any

SEARCH_SPACES: dict[str, dict[str, Any]] = {
    "resnet": {
        "lr": {"type": "float", "low": 1e-4, "high": 1e-1, "log": True},
        "weight_decay": {"type": "float", "low": 1e-6, "high": 1e-1, "log": True},
        "batch_size": {"type": "categorical", "choices": [32, 64, 128]},
        "model.drop_path_rate": {"type": "float", "low": 0.0, "high": 0.2},
        "label_smoothing": {"type": "float", "low": 0.0, "high": 0.2},
    },
    "vit": {
        "lr": {"type": "float", "low": 1e-5, "high": 3e-3, "log": True},
        "weight_decay": {"type": "float", "low": 1e-4, "high": 0.3, "log": True},
        "batch_size": {"type": "categorical", "choices": [32, 64, 128]},
        "model.drop_path_rate": {"type": "float", "low": 0.0, "high": 0.3},
        "label_smoothing": {"type": "float", "low": 0.0, "high": 0.2},
    },
}
