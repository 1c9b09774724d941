"""The run directory: config, metrics log, checkpoints, model artefact and summary.

::

    RUN_DIR/
      config.json        resolved config, versions of bestiary, torch and plugins, host, git commit
      metrics.jsonl      one JSON object per logged step or evaluation
      checkpoints/       step-00000120/ ... (the last K), see bestiary.engine.checkpoint
      tensorboard/       event files (from the tensorboard plugin)
      model/             model.safetensors + model.json, for bestiary.load_model
      summary.json       final and best metrics, wall time, samples/s, status
"""

from __future__ import annotations

import json
import os
import platform
import re
import secrets
import shutil
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

CHECKPOINT_RE = re.compile(r"^step-(\d+)$")
#: What a checkpoint writer killed mid-way leaves: ``.step-N.tmp-PID`` (or ``.tmp-dcp``) being
#: written, ``.step-N.old-PID`` being replaced (see ``bestiary.engine.checkpoint.commit``).
STALE_RE = re.compile(r"^\.(step-\d+)\.(tmp|old)-[^/]+$")


def new_run_dir(root: str | Path, arch: str, dataset: str) -> Path:
    """A fresh, unique directory ``ROOT/YYYYmmdd-HHMMSS-arch-dataset-xxxx``."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    slug = re.sub(r"[^a-z0-9_.-]+", "-", f"{arch}-{dataset}".lower())
    path = Path(root) / f"{stamp}-{slug}-{secrets.token_hex(2)}"
    path.mkdir(parents=True, exist_ok=False)
    return path


class RunDir:
    """Files of one run. Only the main process writes."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    @property
    def checkpoints(self) -> Path:
        return self.path / "checkpoints"

    @property
    def model_dir(self) -> Path:
        return self.path / "model"

    def exists(self) -> bool:
        return (self.path / "config.json").exists()

    # -- config and summary ------------------------------------------------------------------

    def write_json(self, name: str, data: Any) -> None:
        """Write ``name`` atomically (temporary file, then rename)."""
        self.path.mkdir(parents=True, exist_ok=True)
        tmp = self.path / f".{name}.tmp-{os.getpid()}"
        tmp.write_text(json.dumps(data, indent=2, default=str) + "\n")
        os.replace(tmp, self.path / name)

    def read_json(self, name: str) -> Any:
        return json.loads((self.path / name).read_text())

    # -- metrics -----------------------------------------------------------------------------

    def log(self, record: dict[str, Any]) -> None:
        with open(self.path / "metrics.jsonl", "a") as f:
            f.write(json.dumps(record) + "\n")

    def metrics(self) -> list[dict[str, Any]]:
        path = self.path / "metrics.jsonl"
        if not path.exists():
            return []
        out = []
        for line in path.read_text().splitlines():
            try:
                out.append(json.loads(line))
            except ValueError:
                continue  # a line cut short by a kill
        return out

    def truncate_metrics(self, step: int, *, evaluated: bool = False) -> None:
        """Drop what a run resumed from a checkpoint at ``step`` logs again, and nothing else:
        training records after ``step`` and evaluations from ``step`` on, or after ``step`` when
        the checkpoint was taken after the evaluation at its step (``evaluated``: the resumed run
        will not evaluate there again, so the record must stay)."""

        def kept_record(r: dict[str, Any]) -> bool:
            at = r.get("step", 0)
            return at < step or (at == step and (evaluated or r.get("split") == "train"))

        kept = [r for r in self.metrics() if kept_record(r)]
        tmp = self.path / f".metrics.jsonl.tmp-{os.getpid()}"
        tmp.write_text("".join(json.dumps(r) + "\n" for r in kept))
        os.replace(tmp, self.path / "metrics.jsonl")

    # -- checkpoints -------------------------------------------------------------------------

    def checkpoint_path(self, step: int) -> Path:
        return self.checkpoints / f"step-{step:08d}"

    def list_checkpoints(self) -> list[Path]:
        if not self.checkpoints.is_dir():
            return []
        found = [p for p in self.checkpoints.iterdir() if p.is_dir() and CHECKPOINT_RE.match(p.name)]
        return sorted(found, key=lambda p: int(CHECKPOINT_RE.match(p.name).group(1)))  # type: ignore[union-attr]

    def latest_checkpoint(self) -> Path | None:
        """The newest complete checkpoint. Reading only: a writer may be at work (a run in progress,
        or another process looking), so temporary folders are left to :meth:`clean_stale_checkpoints`,
        which the trainer calls when it resumes the run."""
        found = self.list_checkpoints()
        return found[-1] if found else None

    def clean_stale_checkpoints(self) -> list[Path]:
        """Remove the temporary folders of interrupted checkpoint writes; return them.

        A writer killed between moving the previous checkpoint aside and renaming the new one
        into place leaves ``.step-N.old-PID`` and no ``step-N``: that complete checkpoint is put
        back rather than deleted.
        """
        if not self.checkpoints.is_dir():
            return []
        removed = []
        for stale in sorted(self.checkpoints.iterdir()):
            match = STALE_RE.match(stale.name)
            if match is None or not stale.is_dir():
                continue
            final = self.checkpoints / match.group(1)
            if match.group(2) == "old" and not final.exists():
                try:
                    stale.rename(final)
                    continue
                except OSError:
                    pass  # another rank restored it first
            shutil.rmtree(stale, ignore_errors=True)
            removed.append(stale)
        return removed

    def prune_checkpoints(self, keep: int) -> None:
        for old in self.list_checkpoints()[:-keep]:
            shutil.rmtree(old, ignore_errors=True)


def environment(plugins: list[dict[str, Any]]) -> dict[str, Any]:
    """Versions and host facts recorded in config.json."""
    import torch  # recorded beside the config; the run has imported it already

    from .._version import __version__

    return {
        "bestiary": __version__,
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "host": socket.gethostname(),
        "git_commit": _git_commit(),
        "plugins": {p["name"]: {"distribution": p["distribution"], "version": p["version"], "status": p["status"]} for p in plugins},
    }


def _git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None
