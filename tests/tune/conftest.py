"""The tuning tests train the tiny entries of tests/engine/toyzoo.py, in process and in subprocesses."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

import bestiary

ENGINE = Path(__file__).resolve().parent.parent / "engine"


@pytest.fixture(autouse=True)
def toy_host(monkeypatch: pytest.MonkeyPatch) -> Iterator[bestiary.PluginHost]:
    monkeypatch.syspath_prepend(str(ENGINE))
    import toyzoo

    host = bestiary.reset_host(bestiary.PluginHost(autoload=False))
    host.add_plugin(toyzoo, "toyzoo")
    yield host
    bestiary.reset_host()


@pytest.fixture
def toy_env() -> dict[str, str]:
    """Environment of a tuner subprocess: toyzoo loaded by path, no third-party plugins."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ENGINE), env.get("PYTHONPATH", "")])
    env["BESTIARY_PLUGINS"] = "toyzoo"
    env["BESTIARY_DISABLE_PLUGIN_AUTOLOAD"] = "1"
    return env



