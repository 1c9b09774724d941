"""File modes of what a run writes: weights readable by whoever may read the run folder.

safetensors writes through a private temporary file (mode 0600) and renames it into place, so its
files ignore the umask; :func:`share` gives them the mode a plain ``open`` would have.
"""

from __future__ import annotations

import os
from pathlib import Path


def umask() -> int:
    """The process umask, read without changing it where the system allows."""
    try:
        # Linux reports it; setting it to read it back would race with threads creating files
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def share(*paths: Path) -> None:
    """Give each file in ``paths`` the mode of a newly created file (0644 under umask 022)."""
    mode = 0o666 & ~umask()
    for path in paths:
        os.chmod(path, mode)
