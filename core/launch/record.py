"""The jobs this user started, kept in a JSON-lines file so ``bestiary jobs`` lists them.

The file is ``$BESTIARY_JOBS_FILE``, or ``jobs.jsonl`` in ``$BESTIARY_CACHE_DIR`` (default
``~/.cache/bestiary``). Each line names the job, its launcher, its kind and where it runs.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any


def jobs_file() -> Path:
    """Where the record lives."""
    explicit = os.environ.get("BESTIARY_JOBS_FILE")
    if explicit:
        return Path(explicit)
    cache = os.environ.get("BESTIARY_CACHE_DIR") or os.path.join(os.path.expanduser("~"), ".cache", "bestiary")
    return Path(cache) / "jobs.jsonl"


def record_job(name: str, launcher: str, kind: str, details: dict[str, Any]) -> None:
    """Append one job to the record."""
    path = jobs_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    entry = {"name": name, "launcher": launcher, "kind": kind, "created": time.time(),
             **{k: v for k, v in details.items() if k in ("region", "arn", "instance_type", "instance_count")}}
    with open(path, "a") as f:
        f.write(json.dumps(entry) + "\n")


def recorded_jobs() -> list[dict[str, Any]]:
    """Every recorded job, newest first; a later line for the same name wins."""
    path = jobs_file()
    if not path.exists():
        return []
    jobs: dict[str, dict[str, Any]] = {}
    for line in path.read_text().splitlines():
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            continue  # a line cut short by a crash
        if isinstance(entry, dict) and "name" in entry:
            jobs[entry["name"]] = entry
    return sorted(jobs.values(), key=lambda e: e.get("created", 0), reverse=True)


def find_job(name: str) -> dict[str, Any]:
    """The recorded job called ``name``.

    :raises KeyError: naming close matches and the command that lists jobs.
    """
    import difflib

    jobs = {j["name"]: j for j in recorded_jobs()}
    if name in jobs:
        return jobs[name]
    close = difflib.get_close_matches(name, list(jobs), n=3)
    hint = f" Did you mean: {', '.join(close)}?" if close else ""
    raise KeyError(f"no job {name!r} was started from this machine.{hint} See `bestiary jobs list`, or pass "
                   "--launcher and --region for a job started elsewhere")
