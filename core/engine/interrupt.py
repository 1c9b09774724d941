"""How an interrupted run ends and how it continues, for every process that runs one.

A run stopped by Ctrl-C or SIGTERM saves a checkpoint and its process exits with the shell's code
for that signal, so a launcher, a scheduler or a shell script can tell it from a failure; a worker
restarted by torchrun gets :data:`RESUME_FLAG` and continues the run in its directory.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

#: Exit code of a run interrupted by Ctrl-C (SIGINT), and by SIGTERM: 128 + the signal's number.
EXIT_SIGINT = 130
EXIT_SIGTERM = 143
#: The hidden ``bestiary train`` flag of torchrun workers: a restarted worker resumes the run in
#: its directory instead of refusing a directory that already holds one.
RESUME_FLAG = "--resume-existing"


def interrupted_exit_code(summary: Mapping[str, Any]) -> int:
    """The exit code of a process whose run ended with ``summary`` (status ``interrupted``):
    :data:`EXIT_SIGINT` for Ctrl-C, else :data:`EXIT_SIGTERM`."""
    return EXIT_SIGINT if summary.get("signal") == "SIGINT" else EXIT_SIGTERM
