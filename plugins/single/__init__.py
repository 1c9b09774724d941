"""The ``single`` strategy: one process on the CPU or one GPU."""

from __future__ import annotations

from typing import TYPE_CHECKING

from bestiary import hookimpl

if TYPE_CHECKING:
    from bestiary.extend import Register


@hookimpl
def register_strategies(register: Register) -> None:
    register(
        "single",
        "bestiary.extend:Strategy",
        description="One process on the CPU or one GPU",
        tags=("builtin",),
        metadata={"min_world_size": 1, "max_world_size": 1},
    )
