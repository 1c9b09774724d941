"""Start a run on several processes (and machines) through ``torch.distributed.run`` (torchrun).

``bestiary train ... --nproc-per-node N`` does not train in its own process: it writes the
resolved config, with its run directory fixed up front, to a file, and has torchrun start N workers
running ``python -m bestiary train --config FILE --resume-existing``. Every worker, and every
worker torchrun restarts after a failure, sees the same config and the same run directory; a
restarted worker finds the run there and continues from its last checkpoint.
"""

from __future__ import annotations

import hashlib
import math
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from .config import RunConfig
from .interrupt import RESUME_FLAG


@dataclass(frozen=True)
class Launch:
    """Where and how many worker processes to start.

    :param nproc_per_node: worker processes on this machine.
    :param nnodes: machines taking part.
    :param node_rank: this machine's number (with the c10d rendezvous, ranks follow arrival order).
    :param rdzv_endpoint: ``HOST:PORT`` of the rendezvous (one of the machines); required for
        several machines, a free local port on one.
    :param max_restarts: how often torchrun restarts all workers after one fails.
    """

    nproc_per_node: int = 1
    nnodes: int = 1
    node_rank: int = 0
    rdzv_endpoint: str | None = None
    max_restarts: int = 0

    @property
    def needed(self) -> bool:
        """Whether the run needs worker processes at all."""
        return self.nproc_per_node > 1 or self.nnodes > 1

    def validate(self) -> None:
        for name in ("nproc_per_node", "nnodes"):
            if getattr(self, name) < 1:
                raise ConfigError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(self, name)}")
        if self.max_restarts < 0:
            raise ConfigError(f"--max-restarts must be >= 0, got {self.max_restarts}")
        if not 0 <= self.node_rank < self.nnodes:
            raise ConfigError(f"--node-rank must be in [0, {self.nnodes}), got {self.node_rank}")
        if self.nnodes > 1 and not self.rdzv_endpoint:
            raise ConfigError("a run on several machines needs --rdzv-endpoint HOST:PORT, the same on every "
                              "machine (HOST is one of them, PORT a free port there)")


def toml_value(value: Any) -> str:
    """``value`` as a TOML value (strings, numbers, booleans, lists and tables of them)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, str):
        return toml_string(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        items = ", ".join(f"{toml_string(str(k))} = {toml_value(v)}" for k, v in value.items() if v is not None)
        return "{" + items + "}"
    raise ConfigError(f"cannot write {value!r} ({type(value).__name__}) to a TOML config file")


_SHORT_ESCAPES = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\t": "\\t", "\n": "\\n", "\f": "\\f", "\r": "\\r"}


def toml_string(text: str) -> str:
    """``text`` as a TOML basic string written in ASCII: printable ASCII as it is, the TOML spec's
    short escapes for quotes, backslashes and controls, and every other character as ``\\u`` with
    four hex digits or ``\\U`` with eight (JSON's surrogate pairs are invalid TOML), so the file
    reads back the same whatever encoding wrote it.

    :raises ConfigError: for a lone surrogate (undecodable bytes from the command line), which no
        TOML file can hold.
    """
    out = ['"']
    for char in text:
        code = ord(char)
        if char in _SHORT_ESCAPES:
            out.append(_SHORT_ESCAPES[char])
        elif 0x20 <= code < 0x7F:
            out.append(char)
        elif 0xD800 <= code <= 0xDFFF:
            raise ConfigError(f"the config value {text!r} holds a character that is not valid Unicode "
                              f"(U+{code:04X}, from undecodable bytes); write it in UTF-8")
        elif code <= 0xFFFF:
            out.append(f"\\u{code:04X}")
        else:
            out.append(f"\\U{code:08X}")
    out.append('"')
    return "".join(out)


def to_toml(cfg: RunConfig) -> str:
    """The config as a TOML file that ``RunConfig.load`` reads back to an equal config."""
    lines = [f"{key} = {toml_value(value)}" for key, value in cfg.to_dict().items() if value is not None]
    return "\n".join(lines) + "\n"


def fix_run_dir(cfg: RunConfig, launch: Launch, resume: str | None = None) -> RunConfig:
    """The config with its run directory chosen now, so that every worker and restart shares it.
    Resolves every name first, so that a typo fails here rather than in each worker."""
    from .run import resolve
    from .rundir import new_run_dir

    parts = resolve(cfg)
    if "distributed" not in parts.strategy.tags:
        raise ConfigError(f"strategy {parts.strategy.name!r} runs in one process; several processes need a "
                          "distributed one, e.g. --strategy ddp (see `bestiary list strategies`)")
    if resume is not None:
        return cfg.replace(run_dir=str(Path(resume).resolve()))
    if cfg.run_dir:
        return cfg.replace(run_dir=str(Path(cfg.run_dir).resolve()))
    if launch.nnodes > 1:
        raise ConfigError("a run on several machines needs --run-dir on storage every machine sees "
                          "(the same path on each), so that all ranks and restarts share it")
    return cfg.replace(run_dir=str(new_run_dir(cfg.runs_root, parts.arch.name, parts.dataset.name).resolve()))


def torchrun_args(launch: Launch, config_file: Path, run_id: str) -> list[str]:
    """Arguments for ``torch.distributed.run`` that start ``python -m bestiary train`` workers."""
    args = ["--nnodes", str(launch.nnodes), "--nproc-per-node", str(launch.nproc_per_node),
            "--max-restarts", str(launch.max_restarts), "--rdzv-backend", "c10d", "--rdzv-id", run_id]
    if launch.nnodes == 1 and not launch.rdzv_endpoint:
        args.append("--standalone")  # c10d on a free local port
    else:
        args += ["--rdzv-endpoint", str(launch.rdzv_endpoint), "--node-rank", str(launch.node_rank)]
    return [*args, "--module", "bestiary", "train", "--config", str(config_file), RESUME_FLAG]


def worker_env(cfg: RunConfig, launch: Launch) -> dict[str, str]:
    """Variables the workers need, unless already set: one thread each on the CPU, and a fresh
    rendezvous store per restart (a shared one keeps a dead attempt's keys, pytorch/pytorch#135712)."""
    env: dict[str, str] = {}
    if launch.max_restarts > 0:
        env["TORCH_DISABLE_SHARE_RDZV_TCP_STORE"] = "1"
    if _on_cpu(cfg.device):
        env["OMP_NUM_THREADS"] = "1"
    return {k: v for k, v in env.items() if k not in os.environ}


def _on_cpu(device: str) -> bool:
    if device == "cpu":
        return True
    if device == "auto":
        import torch  # only to ask whether there is a GPU

        return not torch.cuda.is_available()
    return False


def launch_run(cfg: RunConfig, launch: Launch, *, resume: str | None = None, quiet: bool | None = None) -> int:
    """Start the workers of ``cfg`` and wait for them; return the exit status (0 when all succeed).

    :param cfg: the run config (with ``resume``, the config saved in that run directory).
    :param launch: where and how many processes.
    :param resume: a run directory to continue.
    :param quiet: no progress bar.
    """
    launch.validate()
    cfg = fix_run_dir(cfg, launch, resume)
    if quiet is not None:
        cfg = cfg.replace(quiet=quiet)
    run_id = "bestiary-" + hashlib.sha1(str(cfg.run_dir).encode()).hexdigest()[:12]
    from torch.distributed.elastic.multiprocessing.api import SignalException  # torchrun's error types
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import get_args_parser, run

    with tempfile.TemporaryDirectory(prefix="bestiary-launch-") as tmp:
        config_file = Path(tmp) / "config.toml"
        config_file.write_text(to_toml(cfg), encoding="utf-8")
        if RunConfig.load(config_file) != cfg:
            raise ConfigError("the config does not survive a round trip through TOML; report this as a bug "
                              "(`bestiary --debug ...` shows where)")
        args = get_args_parser().parse_args(torchrun_args(launch, config_file, run_id))
        saved = {k: os.environ.get(k) for k in ("TORCH_DISABLE_SHARE_RDZV_TCP_STORE", "OMP_NUM_THREADS")}
        os.environ.update(worker_env(cfg, launch))
        try:
            run(args)
        except ChildFailedError as exc:
            failures = exc.failures
            first = failures[min(failures)] if failures else None
            return first.exitcode if first is not None and first.exitcode > 0 else 1
        except SignalException as exc:  # Ctrl-C or SIGTERM: torchrun stopped the workers
            return 128 + int(exc.sigval)
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
    return 0
