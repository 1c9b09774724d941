"""Durations on the command line (``90``, ``90s``, ``5m``, ``1h30m``)."""

from __future__ import annotations

import re

from ..errors import ConfigError

_PART = re.compile(r"(\d+(?:\.\d+)?)([hms]?)")
_SCALE = {"h": 3600.0, "m": 60.0, "s": 1.0, "": 1.0}


def parse_duration(text: str | float) -> float:
    """Seconds in ``text``: a number of seconds or parts such as ``1h30m``, ``5m``, ``45s``.

    :raises ConfigError: for anything else, with examples of what is accepted.
    """
    if isinstance(text, (int, float)):
        seconds = float(text)
    else:
        raw = text.strip().lower().replace(" ", "")
        parts = _PART.findall(raw)
        if not raw or "".join(n + u for n, u in parts) != raw or ("" in [u for _, u in parts] and len(parts) > 1):
            raise ConfigError(f"cannot read the duration {text!r}; write seconds (90) or e.g. 45s, 5m, 1h30m")
        seconds = sum(float(n) * _SCALE[u] for n, u in parts)
    if not seconds > 0:
        raise ConfigError(f"a duration must be positive, got {text!r}")
    return seconds
