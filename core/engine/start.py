"""Start or resume one run from a config, in this process: the one entry point of training.

``bestiary train`` (through the ``local`` launcher), the torchrun workers it starts, and any other
caller that trains in its own process (a container's entry point, a script) call
:func:`start_run`; the CLI only parses its arguments into a config.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError

if TYPE_CHECKING:
    from ..host import PluginHost
    from .config import RunConfig


def start_run(config: RunConfig | None = None, *, resume: str | Path | None = None,
              host: PluginHost | None = None, quiet: bool | None = None,
              resume_existing: bool = False) -> dict[str, Any]:
    """Train the run of ``config``, or continue the run in ``resume``; return its summary.

    :param config: the run config (ignored when ``resume`` is given: a run continues with its
        saved config).
    :param resume: a run directory to continue from its last checkpoint.
    :param host: the plugin host (default: the process-wide one).
    :param quiet: no progress bar (default: the config's ``quiet``).
    :param resume_existing: continue ``config.run_dir`` when it already holds a run instead of
        refusing it: a torchrun worker that was restarted after a failure finds its run there.
    :return: the summary, as ``summary.json`` holds it (``status``, ``final``, ``best``, ``run_dir``, ...).
    :raises ValueError: neither a config nor a run directory.
    """
    from .rundir import RunDir
    from .trainer import Trainer  # imports torch: only when a run starts

    existing = config.run_dir if config is not None and config.run_dir and RunDir(config.run_dir).exists() else None
    if resume is None and resume_existing and existing is not None:
        resume = existing
        quiet = config.quiet if quiet is None and config is not None else quiet
    if resume is not None:
        return Trainer(resume=resume, host=host, quiet=quiet).run()
    if config is None:
        raise ConfigError("give a config or a run directory to resume")
    return Trainer(config, host=host, quiet=quiet).run()
