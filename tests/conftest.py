"""Shared fixtures: a clean environment and plugin host per test, fake installed distributions
(entry points without pip) and a runner for ``python -m bestiary`` in a fresh process."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent / "fixtures"))

from bestiary_testing import (
    ENV_VARS,
    FIXTURES_DIR,
    FRESH_MODULES,
    clean_env,
    make_host,
    write_dist,
)

import bestiary


@pytest.fixture(autouse=True)
def _isolated() -> Iterator[None]:
    """Clear bestiary's environment variables, re-import fixture plugins, and leave the process-wide
    host as the test found it."""
    saved = {name: os.environ.pop(name) for name in ENV_VARS if name in os.environ}
    for module in [m for m in sys.modules if m.split(".")[0] in FRESH_MODULES]:
        del sys.modules[module]
    host = bestiary.get_host()
    try:
        yield
    finally:
        for name in ENV_VARS:
            os.environ.pop(name, None)
        os.environ.update(saved)
        if bestiary.get_host() is not host:
            bestiary.reset_host(host)


@pytest.fixture
def use_host() -> Callable[..., bestiary.PluginHost]:
    """Make a host of fixture plugins the process-wide one (what the API and the CLI use)."""

    def use(*names: str, **kwargs: object) -> bestiary.PluginHost:
        return bestiary.reset_host(make_host(*names, **kwargs))

    return use


@pytest.fixture
def site(tmp_path: Path) -> Path:
    """An empty directory for fake installed distributions (see ``write_dist``)."""
    path = tmp_path / "site"
    path.mkdir()
    return path


@pytest.fixture
def in_site(site: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[[str, str, dict[str, str]], Path]:
    """Install fake distributions into this process: ``in_site(name, version, entry_points)``."""
    monkeypatch.syspath_prepend(str(site))
    return lambda name, version, entry_points: write_dist(site, name, version, entry_points)


@pytest.fixture
def run_bestiary(tmp_path: Path) -> Callable[..., subprocess.CompletedProcess[str]]:
    """Run ``python -m bestiary ARGS`` in a fresh process with ``paths`` (and the fixture plugins)
    on PYTHONPATH, the host's variables cleared, then set from ``env``."""

    def run(
        *args: str, paths: Iterable[Path | str] = (), env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        pythonpath = os.pathsep.join([*map(str, paths), str(FIXTURES_DIR)])
        return subprocess.run(
            [sys.executable, "-m", "bestiary", *args],
            cwd=tmp_path,
            env=clean_env(PYTHONPATH=pythonpath, **(env or {})),
            capture_output=True,
            text=True,
            timeout=120,
        )

    return run
