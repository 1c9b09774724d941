"""Fixtures of the benchmark tests: a host of the built-in plugins and the toy zoo, suite files."""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest
from benchhosts import make_toy_host

import bestiary


@pytest.fixture
def toy_host() -> bestiary.PluginHost:
    """:func:`make_toy_host` as the process-wide host (the root conftest restores the previous one)."""
    return bestiary.reset_host(make_toy_host())


@pytest.fixture
def suite_file(tmp_path: Path) -> Callable[[str, str], Path]:
    """Write a suite file: ``suite_file("name", "toml text")``."""

    def write(name: str, text: str) -> Path:
        path = tmp_path / f"{name}.toml"
        path.write_text(textwrap.dedent(text), encoding="utf-8")
        return path

    return write
