"""Which models the installed timm offers, cached per timm version so ``timm.list_models()`` runs once.

The cache is a JSON list in ``$BESTIARY_CACHE_DIR`` (default ``~/.cache/bestiary``), named after
the timm version, so upgrading timm refreshes it. Knowing the version costs a metadata read, not an
import of timm.
"""

from __future__ import annotations

import json
import os
from importlib import metadata
from pathlib import Path


def cache_dir() -> Path:
    return Path(os.environ.get("BESTIARY_CACHE_DIR") or Path.home() / ".cache" / "bestiary")


def timm_version() -> str | None:
    try:
        return metadata.version("timm")
    except metadata.PackageNotFoundError:
        return None


def cache_file() -> Path | None:
    version = timm_version()
    return cache_dir() / f"timm-models-{version}.json" if version else None


def model_names() -> list[str]:
    """Every timm model name (no pretrained tags), from the cache or, once, from timm itself."""
    path = cache_file()
    if path is None:
        return []
    try:
        return list(json.loads(path.read_text()))
    except (OSError, ValueError):
        pass
    import timm  # only when the cache for this timm version is missing

    names = sorted(timm.list_models())
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".tmp-{os.getpid()}")
        tmp.write_text(json.dumps(names))
        os.replace(tmp, path)
    except OSError:
        pass  # a read-only home only costs the next listing another timm.list_models()
    return names


def is_model(name: str) -> bool:
    """Whether timm offers ``name`` (the cache answers when present, else timm)."""
    path = cache_file()
    if path is not None and path.exists():
        return name in set(model_names())
    if path is None:
        return False
    import timm  # a single lookup needs no full listing

    return bool(timm.is_model(name))
