"""User-facing errors of the run engine, importable without torch (the CLI maps them to exit codes)."""

from __future__ import annotations


class ConfigError(ValueError):
    """A configuration value is invalid; the message names the field and the allowed values."""


class TaskMismatchError(ValueError):
    """Architecture, dataset or metric serve different tasks."""


class CheckpointError(ValueError):
    """A checkpoint is missing, truncated or was modified after it was written."""
