"""Shared set-up of the parallel tests: a host with the built-in plugins and the toy zoo."""

from __future__ import annotations

from pathlib import Path

import pytest

import bestiary

ENGINE_TESTS = Path(__file__).resolve().parents[1] / "engine"


@pytest.fixture
def toy_host(monkeypatch):
    monkeypatch.syspath_prepend(str(ENGINE_TESTS))
    import toyzoo

    host = bestiary.reset_host(bestiary.PluginHost(autoload=False))
    host.add_plugin(toyzoo, "toyzoo")
    yield host
    bestiary.reset_host()
