"""A metric's direction: whether a larger or a smaller value is better.

The metric entry owns it: ``metadata={"higher_is_better": true}`` (or ``false``), checked when the
entry is made, and ``null`` for values that are no score (a confusion matrix, a value per quantile
level). Everything that ranks runs or trials (the trainer's best model and early stopping, the
tuner, benchmarks, ``runs compare``, launchers' tuning jobs) asks :func:`metric_direction`, so a
metric ranks the same everywhere.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from .errors import InvalidEntryError

#: The metadata key of a metric entry that declares its direction.
DIRECTION_KEY = "higher_is_better"
#: The training loss is not a registered metric; smaller is better.
LOSS = "loss"

Direction = Literal["max", "min"]


def check_direction(what: str, metadata: Mapping[str, Any]) -> None:
    """Refuse a metric entry whose metadata does not declare its direction.

    :param what: the entry, for the message (``metric 'error_rate'``).
    :param metadata: the entry's metadata.
    :raises InvalidEntryError: with the remedy in one line.
    """
    if DIRECTION_KEY not in metadata:
        raise InvalidEntryError(
            f"{what} declares no direction: register it with metadata={{'{DIRECTION_KEY}': True}} "
            "(larger is better), False (smaller is better) or None (a value that is no score)"
        )
    value = metadata[DIRECTION_KEY]
    if value is not None and not isinstance(value, bool):
        raise InvalidEntryError(
            f"{what}: metadata['{DIRECTION_KEY}'] must be True, False or None, got {value!r}"
        )


def metric_direction(metric: Any, registry: Any = None) -> Direction | None:
    """``max`` or ``min`` for a metric, ``None`` for a value that is no score.

    :param metric: a metric entry, or a metric name (``loss`` is ``min`` without a lookup).
    :param registry: a :class:`~bestiary.registry.Registry` (``host.registry``), a host that has
        one, or the metrics :class:`~bestiary.registry.Table`; needed for names only.
    :raises LookupFailure: for a name no plugin registers.
    """
    if isinstance(metric, str):
        if metric == LOSS:
            return "min"
        if registry is None:
            raise TypeError(f"metric_direction({metric!r}) needs the registry to look the name up")
        table = getattr(registry, "registry", registry)  # a host holds its registry
        if hasattr(table, "table"):
            table = table.table("metrics")
        metric = table.get(metric)
    higher = metric.metadata.get(DIRECTION_KEY)
    if higher is None:
        return None
    return "max" if higher else "min"
