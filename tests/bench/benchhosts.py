"""The plugin host of the benchmark tests, in a module of its own name: test modules import it
(``conftest`` is a name every test folder has)."""

from __future__ import annotations

import sys
from pathlib import Path

import bestiary

ENGINE_TESTS = Path(__file__).resolve().parent.parent / "engine"
if str(ENGINE_TESTS) not in sys.path:
    sys.path.insert(0, str(ENGINE_TESTS))

import toyzoo  # found through the path above


def make_toy_host() -> bestiary.PluginHost:
    """Built-ins and the toy zoo, no third-party entry points."""
    host = bestiary.PluginHost(autoload=False, disabled=())
    info = host.add_plugin(toyzoo, "toyzoo")
    assert info.status == "ok", info.error
    return host
