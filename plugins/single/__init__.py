"""The ``single`` strategy: one process on the CPU or one GPU."""

from __future__ import annotations

from bestiary import hookimpl


@hookimpl
def register_strategies(register):  # type: ignore[no-untyped-def]
    register(
        "single",
        "bestiary.extend:Strategy",
        description="One process on the CPU or one GPU",
        tags=("builtin",),
        metadata={"min_world_size": 1, "max_world_size": 1},
    )
