"""The code directory a SageMaker job receives: an entry script, the job file, the run config,
``requirements.txt`` and, by default, a copy of this bestiary installation.

::

    code/
      bestiary_entry.py     calls bestiary.plugins.launchers.sagemaker.container.main (the same `bestiary train` path)
      bestiary_job.json     launch settings the container needs (processes per instance, ...)
      bestiary_config.toml  the run config, as `bestiary train --config` reads it
      requirements.txt      bestiary's dependencies except torch (the image has it), extra ones
      bestiary/             this installation's package (--bestiary-source source)
      bestiary-*.whl        or a wheel to install (--bestiary-source wheel:PATH)
"""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
from importlib import metadata
from pathlib import Path
from typing import Any

from bestiary.extend import ConfigError, to_toml

from .container import CONFIG_FILE, JOB_FILE, JOB_FORMAT

ENTRY_SCRIPT = "bestiary_entry.py"
#: Packages of the bestiary namespace that live in folders of their own in a development install.
_TREES = ("bestiary", "bestiary.registry", "bestiary.plugins", "bestiary.benchmarks")
#: Installed by the framework image; reinstalling them would replace its CUDA build.
_FROM_IMAGE = {"torch", "torchvision", "torchaudio"}

_ENTRY = '''"""Entry point of a bestiary SageMaker job, written by `bestiary train --launcher sagemaker`.

Hyperparameters also arrive as command-line arguments; bestiary reads them from SM_HPS instead.
"""
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)  # the uploaded bestiary package, when the job ships one

from bestiary.plugins.launchers.sagemaker.container import main  # noqa: E402

sys.exit(main(HERE))
'''


def dependencies() -> list[str]:
    """bestiary's own requirements, without extras and without what the framework image provides."""
    try:
        requires = metadata.requires("bestiary") or []
    except metadata.PackageNotFoundError:
        return []
    out = []
    for req in requires:
        if "extra ==" in req:
            continue
        name = re.split(r"[\s<>=!~;\[]", req, maxsplit=1)[0].lower()
        if name not in _FROM_IMAGE:
            out.append(req.split(";")[0].strip())
    return out


def _copy_package(target: Path) -> None:
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
    for name in _TREES:
        spec = importlib.util.find_spec(name)
        if spec is None or not spec.submodule_search_locations:
            continue
        dest = target.joinpath(*name.split("."))
        for location in spec.submodule_search_locations:
            shutil.copytree(location, dest, ignore=ignore, dirs_exist_ok=True)


def stage(directory: Path, config: Any, job: dict[str, Any], *, source: str = "source",
          requirements: tuple[str, ...] = ()) -> dict[str, Any]:
    """Write the code directory for one job into ``directory``.

    :param config: the run config (:class:`~bestiary.engine.config.RunConfig`); ``None`` for a job
        that runs another bestiary command.
    :param job: launch settings for the container (``nproc_per_node``, ``rdzv_port``).
    :param source: ``source``, ``installed`` or ``wheel:PATH``.
    :param requirements: extra pip requirements.
    :return: what was staged: ``files``, ``requirements`` and ``source``.
    """
    directory.mkdir(parents=True, exist_ok=True)
    (directory / ENTRY_SCRIPT).write_text(_ENTRY)
    (directory / JOB_FILE).write_text(json.dumps({"format": JOB_FORMAT, **job}, indent=2) + "\n")
    if config is not None:
        (directory / CONFIG_FILE).write_text(to_toml(config), encoding="utf-8")
    reqs: list[str] = []
    if source == "source":
        _copy_package(directory)
        reqs += dependencies()
    elif source.startswith("wheel:"):
        wheel = Path(source[len("wheel:"):]).expanduser()
        if not wheel.is_file() or wheel.suffix != ".whl":
            raise ConfigError(f"--bestiary-source {source}: {wheel} is not a wheel file; build one with "
                              "`pip wheel --no-deps -w dist .` in the bestiary checkout")
        shutil.copy2(wheel, directory / wheel.name)
        reqs.append(f"./{wheel.name}")
    elif source != "installed":
        raise ConfigError(f"--bestiary-source must be source, installed or wheel:PATH, got {source!r}")
    reqs += list(requirements)
    if reqs:
        (directory / "requirements.txt").write_text("\n".join(reqs) + "\n")
    files = sorted(str(p.relative_to(directory)) for p in directory.rglob("*") if p.is_file())
    return {"source": source, "requirements": reqs, "files": len(files),
            "bytes": sum((directory / f).stat().st_size for f in files)}
