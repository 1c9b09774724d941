"""Built-in launchers: ``local`` (this process, or torchrun workers) and ``sagemaker`` (Amazon
SageMaker training and hyperparameter tuning jobs).

Registration imports nothing: ``local`` imports torch when it starts a run, ``sagemaker`` imports
the SageMaker Python SDK (``pip install 'bestiary[sagemaker]'``) only when it talks to AWS.
"""

from __future__ import annotations

from bestiary import hookimpl

_HERE = "bestiary.plugins.launchers"


@hookimpl
def register_launchers(register):  # type: ignore[no-untyped-def]
    register("local", f"{_HERE}.local:LocalLauncher", tags=("builtin",),
             description="This machine: in this process, or torchrun workers with --nproc-per-node/--nnodes")
    register("sagemaker", f"{_HERE}.sagemaker:SageMakerLauncher", tags=("cloud", "aws"),
             description="Amazon SageMaker training and tuning jobs (needs the sagemaker extra of bestiary)",
             metadata={"extra": "sagemaker", "docs": "docs/sagemaker.md"})
