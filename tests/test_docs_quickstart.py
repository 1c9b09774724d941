"""The quick start shows what the commands print today: every ``bestiary`` command of its console
blocks runs without error, and every output it shows (tables, JSON, messages, the results written as
comments in its Python block) matches a real run with only the built-in plugins.

Tables are compared row by row, cell by cell, with the whitespace taken out: the page's tables were
printed narrower than a test's (rich wraps cells at the width of the terminal).
"""

from __future__ import annotations

import itertools
import json
import re
import shlex
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from bestiary_testing import clean_env

ROOT = Path(__file__).resolve().parents[1]
PAGE = ROOT / "docs" / "quickstart.md"
#: Commands the page shows but a test must not run: they change the environment.
MUTATING = (("plugins", "install"), ("plugins", "uninstall"))
BORDERS = "┏┃┡│└"


def console_examples(text: str) -> Iterator[tuple[str, list[str]]]:
    """``(command, output lines)`` of every ``$ bestiary ...`` line of the console blocks."""
    for block in re.findall(r"^```console\n(.*?)^```", text, re.DOTALL | re.MULTILINE):
        command: str | None = None
        output: list[str] = []
        for line in block.splitlines():
            if line.startswith("$ "):
                if command is not None:
                    yield command, output
                command, output = line[2:], []
            elif command is not None:
                output.append(line)
        if command is not None:
            yield command, output


EXAMPLES = [(c, o) for c, o in console_examples(PAGE.read_text(encoding="utf-8")) if c.startswith("bestiary ")]


def run(args: list[str], *, script: str | None = None) -> subprocess.CompletedProcess[str]:
    """A fresh process with the built-in plugins only, as the page's listings were made."""
    argv = [sys.executable, "-c", script] if script is not None else [sys.executable, "-m", "bestiary", *args]
    return subprocess.run(argv, env=clean_env(BESTIARY_DISABLE_PLUGIN_AUTOLOAD="1"), capture_output=True,
                          text=True, timeout=120)


def tables(lines: list[str]) -> list[dict[str, Any]]:
    """The tables of a rich listing: title, header and rows, each row's cells joined across lines."""
    found: list[dict[str, Any]] = []
    for line in (raw.rstrip() for raw in lines):
        if not line:
            continue
        if line[0] not in BORDERS:
            found.append({"title": line.strip(), "header": [], "rows": []})
            continue
        if line[0] not in "┃│":
            continue
        cells = ["".join(c.split()) for c in re.split("[┃│]", line)[1:-1]]
        if line[0] == "┃":
            found[-1]["header"] = cells
        elif cells[0] or not found[-1]["rows"]:
            found[-1]["rows"].append(cells)
        else:  # a wrapped row continues
            found[-1]["rows"][-1] = [a + b for a, b in zip(found[-1]["rows"][-1], cells)]
    return found


def test_the_page_shows_commands_and_outputs() -> None:
    assert len(EXAMPLES) >= 10
    shown = {c for c, o in EXAMPLES if o}
    assert {"bestiary list metrics", "bestiary plugins", "bestiary --version"} <= shown


@pytest.mark.parametrize(("command", "output"), EXAMPLES, ids=[c for c, _ in EXAMPLES])
def test_the_command_prints_what_the_page_shows(command: str, output: list[str]) -> None:
    args = shlex.split(command, comments=True)[1:]
    if tuple(args[:2]) in MUTATING:
        # the page says to run these from the root of the checkout: the paths it installs are there
        paths = [a for a in args[2:] if a.startswith(("./", "../"))]
        assert all((ROOT / p / "pyproject.toml").exists() for p in paths), paths
        pytest.skip("changes the environment; tests/test_cli.py covers it")
    result = run(args)
    shown = [line.rstrip() for line in output]
    if not shown:
        assert result.returncode == 0, result.stderr
        return
    real = (result.stdout + result.stderr).splitlines()
    if shown[0].startswith(("[", "{")):
        assert result.returncode == 0, result.stderr
        assert json.loads(result.stdout) == json.loads("\n".join(shown))
    elif any(line[:1] in BORDERS for line in shown):
        assert result.returncode == 0, result.stderr
        assert tables(real) == tables(shown)
    else:
        assert [line.rstrip() for line in real] == shown


def test_the_tables_are_parsed() -> None:
    # the comparison above must see every row: a parser that saw none would pass anything
    metrics = dict(EXAMPLES)["bestiary list metrics"]
    (table,) = tables(metrics)
    assert table["title"] == "metrics (26)" and len(table["rows"]) == 26
    assert table["header"] == ["name", "task", "plugin", "description"]
    rmse = next(r for r in table["rows"] if r[0] == "rmse")
    assert rmse[3] == "Rootofthemeanoverwindowsofthemeansquarederrorofthemeanforecast"
    (plugins,) = tables(dict(EXAMPLES)["bestiary plugins"])
    assert plugins["title"] == f"plugins ({len(plugins['rows'])})"


def python_results(text: str) -> list[tuple[str, str]]:
    """``(expression, result shown)`` for every line of the Python blocks followed by a ``# result`` line."""
    pairs = []
    for block in re.findall(r"^```python\n(.*?)^```", text, re.DOTALL | re.MULTILINE):
        lines = block.splitlines()
        for line, after in itertools.pairwise(lines):
            if line and not line.startswith("#") and after.startswith("# "):
                pairs.append((line, after[2:]))
    return pairs


def test_the_python_block_prints_what_the_page_shows() -> None:
    text = PAGE.read_text(encoding="utf-8")
    pairs = python_results(text)
    assert len(pairs) >= 4
    block = re.findall(r"^```python\n(.*?)^```", text, re.DOTALL | re.MULTILINE)[0]
    # run the block as written, printing the value of each line whose result the page shows
    shows = {line for line, _ in pairs}
    script = "\n".join(f"print(repr(({line})))" if line in shows else line for line in block.splitlines())
    result = run([], script=script)
    assert result.returncode == 0, result.stderr
    printed = result.stdout.splitlines()
    assert len(printed) == len(pairs)
    for (line, shown), real in zip(pairs, printed):
        if shown.endswith(", ...]"):  # the page shows the start of a long list
            assert real.startswith(shown[:-len(", ...]")]) and real != shown, line
        else:
            assert real == shown, line
