"""The ``sagemaker`` plugin: runs, tuning studies and any bestiary command as Amazon SageMaker
jobs (launcher ``sagemaker``), its options (``--role``, ``--spot``, ... in ``[options.sagemaker]``)
and the ``bestiary jobs`` commands.

Registration imports nothing: the launcher imports the SageMaker Python SDK
(``pip install 'bestiary[sagemaker]'``) only when it talks to AWS, and click is imported only when
the command line asks for the commands.
"""

from __future__ import annotations

from typing import Any

from bestiary import hookimpl

_HERE = "bestiary.plugins.launchers.sagemaker"


@hookimpl
def register_launchers(register: Any) -> None:
    register("sagemaker", f"{_HERE}.launcher:SageMakerLauncher", tags=("cloud", "aws"),
             description="Amazon SageMaker training and tuning jobs (needs the sagemaker extra of bestiary)",
             metadata={"extra": "sagemaker", "docs": "docs/sagemaker.md"})


@hookimpl
def add_options(add: Any) -> None:
    from .options import declare

    declare(add)


@hookimpl
def add_commands(cli: Any) -> None:
    from .commands import jobs_group  # click: only when the command line is built

    cli.add_command(jobs_group)
