"""Built-in launchers: ``local`` (this process, or torchrun workers). The ``sagemaker``
sub-package is a plugin of its own (Amazon SageMaker jobs, their options and ``bestiary jobs``).

Registration imports nothing: ``local`` imports torch when it starts a run.
"""

from __future__ import annotations

from typing import Any

from bestiary import hookimpl

_HERE = "bestiary.plugins.launchers"


@hookimpl
def register_launchers(register: Any) -> None:
    register("local", f"{_HERE}.local:LocalLauncher", tags=("builtin",),
             description="This machine: in this process, or torchrun workers with --nproc-per-node/--nnodes")
