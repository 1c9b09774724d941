"""The SageMaker launcher's own options, declared through the hook ``add_options``: flags of
``bestiary train``/``tune`` whose values land in the run config's ``[options.sagemaker]`` table,
and of ``bestiary jobs submit``, which passes them to the launcher directly."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

#: (name, type, help, multiple); every default is None, so a run that does not use SageMaker keeps
#: no [options.sagemaker] table.
OPTIONS: tuple[tuple[str, str, str, bool], ...] = (
    ("role", "str", "SageMaker: IAM role ARN the job runs as (or BESTIARY_SAGEMAKER_ROLE).", False),
    ("spot", "bool", ("SageMaker: spot capacity (cheaper, may be interrupted and resumed from the last "
                     "checkpoint)."), False),
    ("max_wait", "str", ("SageMaker, with --spot: run time plus waiting for capacity, e.g. 4h (default: "
                        "2 x --max-run)."), False),
    ("checkpoint_s3", "str", "SageMaker: S3 prefix checkpoints sync to (resume after interruptions).", False),
    ("output_s3", "str", "SageMaker: S3 prefix for the model and outputs.", False),
    ("input_s3", "str", ("SageMaker: input data [CHANNEL=]URI (repeatable); the channel (default 'training') "
                        "is mounted at $SM_CHANNEL_<CHANNEL>, and data.path defaults to it."), True),
    ("keep_alive", "str", "SageMaker: keep instances warm this long for the next job, e.g. 30m.", False),
    ("volume_gb", "int", "SageMaker: storage volume per instance in GB.", False),
)
TABLE = "sagemaker"


def declare(add: Any) -> None:
    """Declare the options (the body of the plugin's ``add_options`` hook)."""
    for name, kind, text, multiple in OPTIONS:
        add(name, type=kind, help=text, table=TABLE, commands=("train", "tune"), multiple=multiple)


def click_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """The same options as click flags, for ``bestiary jobs submit`` (a job without a run config)."""
    import click

    for name, kind, text, multiple in reversed(OPTIONS):
        flag = "--" + name.replace("_", "-")
        if kind == "bool":
            func = click.option(f"{flag}/--no-{flag[2:]}", name, default=None, help=text)(func)
        else:
            func = click.option(flag, name, type={"int": int}.get(kind, str), default=None, multiple=multiple,
                                help=text)(func)
    return func


def pop_settings(kwargs: dict[str, Any]) -> dict[str, Any]:
    """Take the options out of a command's keyword arguments: the ones given, by name."""
    values = {name: kwargs.pop(name, None) for name, *_ in OPTIONS}
    return {k: list(v) if isinstance(v, tuple) else v for k, v in values.items() if v not in (None, ())}
