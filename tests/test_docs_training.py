"""The training, configuration, runs and conformance docs keep up with the code: the config
reference is generated from ``RunConfig``, every config field is documented, every ``bestiary``
command the docs show exists, and links between the pages resolve."""

from __future__ import annotations

import dataclasses
import re
import shlex
import types
from collections.abc import Iterator
from pathlib import Path

import click
import pytest
from bestiary_testing import load_docs_script

from bestiary.cli import main
from bestiary.engine.config import RunConfig, field_docs

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
CONFIG_MD = DOCS / "config.md"
REGENERATE = "run `python docs/gen_config.py` and commit docs/config.md"
#: The pages this module owns; the command and link checks read every page.
PAGES = ("training.md", "config.md", "runs.md", "conformance.md", "scaling.md", "vision.md", "timeseries.md", "tuning.md", "benchmarks.md", "sagemaker.md", "debugger.md")
#: Names of the test-only plugin under tests/engine: examples must use entries users have.
TEST_ONLY_NAMES = ("toyzoo", "toy_mlp", "toy_cnn", "toy_linear", "blobs")

_FENCE = re.compile(r"^```([^\n]*)\n(.*?)^```", re.DOTALL | re.MULTILINE)
_SPAN = re.compile(r"`([^`\n]+)`")
_SHELL_FENCES = {"console", "shell", "sh", "bash", "shell-session"}
_SEPARATORS = {"|", "||", "&&", ";", ">", ">>", "2>", "&"}
#: Words after which ``bestiary`` is the command being run (``python -m bestiary``, ``time ...``).
_LEADS = _SEPARATORS | {"-m", "time", "exec", "!"}


@pytest.fixture(scope="module")
def gen_config() -> types.ModuleType:
    return load_docs_script("gen_config")


# -- the config reference ----------------------------------------------------------------------


def test_config_reference_is_up_to_date(gen_config: types.ModuleType) -> None:
    expected = gen_config.generate()
    current = CONFIG_MD.read_text(encoding="utf-8") if CONFIG_MD.exists() else ""
    assert current == expected, f"docs/config.md differs from RunConfig and its field docs: {REGENERATE}"


@pytest.mark.parametrize("name", [f.name for f in dataclasses.fields(RunConfig)])
def test_every_config_field_has_a_doc_string(name: str) -> None:
    doc = field_docs().get(name, "")
    assert doc.strip(), (
        f"RunConfig field {name!r} has no documentation: put a string literal on the line after it in "
        f"core/engine/config.py, then {REGENERATE}"
    )


@pytest.mark.parametrize("name", [f.name for f in dataclasses.fields(RunConfig)])
def test_every_config_field_is_in_the_reference(name: str) -> None:
    rows = re.findall(r"^\| `(\w+)` \|", CONFIG_MD.read_text(encoding="utf-8"), re.MULTILINE)
    assert rows.count(name) == 1, f"docs/config.md has {rows.count(name)} rows for {name!r}; {REGENERATE}"


def test_generator_rejects_an_undocumented_field(gen_config: types.ModuleType) -> None:
    @dataclasses.dataclass
    class Fake:
        documented: int = 1
        forgotten: int = 2

    with pytest.raises(gen_config.ConfigDocError, match="forgotten"):
        gen_config.generate(Fake, {"documented": "A field."}, {})


def test_generator_shows_flags_defaults_and_types(gen_config: types.ModuleType) -> None:
    @dataclasses.dataclass
    class Fake:
        name: str
        size: int | None = None
        fast: bool = False
        options: dict = dataclasses.field(default_factory=dict)  # type: ignore[type-arg]

    @click.command()
    @click.argument("name")
    @click.option("--size", type=int)
    @click.option("--fast/--no-fast", default=None)
    def command(**kwargs: object) -> None:
        """A stand-in for `bestiary train`."""

    docs = {"name": "The ``name``.", "size": "How | big.", "fast": "Go fast.", "options": "Factory options."}
    text = gen_config.generate(Fake, docs, {p.name: p for p in command.params})
    rows = [line for line in text.splitlines() if line.startswith("| `")]
    assert rows == [
        "| `name` | string | *required* | `NAME` argument | The `name`. |",
        "| `size` | integer | *unset* | `--size` | How \\| big. |",
        "| `fast` | boolean | `false` | `--fast`, `--no-fast` | Go fast. |",
        "| `options` | table | empty table | `--set options.KEY=VALUE` | Factory options. |",
    ]
    assert "## Other fields" in text


# -- commands the docs show --------------------------------------------------------------------


def _command_lines(text: str) -> Iterator[str]:
    """Shell commands in a page: ``$`` lines of console blocks, lines of shell blocks, and inline
    code spans that start with ``bestiary``."""
    for language, body in _FENCE.findall(text):
        language = language.strip().lower()
        if language not in _SHELL_FENCES:
            continue
        body = body.replace("\\\n", " ")
        for line in body.splitlines():
            if language == "console" or language == "shell-session":
                if not line.startswith("$ "):
                    continue
                line = line[2:]
            yield line
    for span in _SPAN.findall(_FENCE.sub("", text)):
        if span.startswith("bestiary "):
            yield span


def _invocations(line: str) -> Iterator[list[str]]:
    """The arguments after each ``bestiary`` word of a shell line, up to a pipe or separator."""
    try:
        words = shlex.split(line, comments=True)
    except ValueError:  # an unbalanced quote in prose: nothing to check
        return
    for i, word in enumerate(words):
        if word == "bestiary" and (i == 0 or "=" in words[i - 1] or words[i - 1] in _LEADS):
            args = []
            for arg in words[i + 1 :]:
                if arg in _SEPARATORS:
                    break
                args.append(arg)
            yield args


def _first_command(command: click.Command, args: list[str]) -> str | None:
    """The first word of ``args`` that is not an option of ``command`` or an option's value."""
    takes_value = {
        opt
        for p in command.params
        if isinstance(p, click.Option) and not p.is_flag and not p.count
        for opt in p.opts
    }
    skip = False
    for arg in args:
        if skip:
            skip = False
        elif arg.startswith("-"):
            skip = arg in takes_value
        else:
            return arg
    return None


def _unknown_commands(text: str) -> list[str]:
    unknown = []
    ctx = click.Context(main)
    known = set(main.list_commands(ctx))  # bestiary's own and those plugins add (bestiary jobs)
    for line in _command_lines(text):
        for args in _invocations(line):
            name = _first_command(main, args)
            if name is None:
                continue
            if name not in known:
                unknown.append(f"bestiary {name}")
                continue
            command = main.get_command(ctx, name)
            if isinstance(command, click.Group):
                rest = args[args.index(name) + 1 :]
                sub = _first_command(command, rest)
                if sub is not None and sub not in command.commands:
                    unknown.append(f"bestiary {name} {sub}")
    return unknown


@pytest.mark.parametrize("page", sorted(p.name for p in DOCS.glob("*.md")))
def test_docs_show_only_existing_commands(page: str) -> None:
    unknown = _unknown_commands((DOCS / page).read_text(encoding="utf-8"))
    assert not unknown, f"docs/{page} shows commands that do not exist: {sorted(set(unknown))}"


def test_the_command_check_finds_commands() -> None:
    text = (
        "Run `bestiary train resnet18 --dataset digits` or `bestiary trian x`.\n\n"
        "```console\n$ BESTIARY_RUNS_ROOT=runs bestiary runs --root runs lst\n"
        "Error: bestiary nothing (output, not a command)\n$ bestiary --strict-plugins list | head\n```\n"
    )
    assert _unknown_commands(text) == ["bestiary runs lst", "bestiary trian"]


@pytest.mark.parametrize("page", PAGES)
def test_pages_exist_and_are_linked_from_the_index(page: str) -> None:
    assert (DOCS / page).exists(), f"docs/{page} is missing"
    index = (DOCS / "index.md").read_text(encoding="utf-8")
    assert f"]({page})" in index, f"docs/index.md does not link {page}"


@pytest.mark.parametrize("page", PAGES)
def test_examples_use_no_test_only_entries(page: str) -> None:
    text = (DOCS / page).read_text(encoding="utf-8")
    found = [name for name in TEST_ONLY_NAMES if re.search(rf"\b{name}\b", text)]
    assert not found, (
        f"docs/{page} names test-only entries {found}; use entries users have (resnet18, digits)"
    )


# -- links -------------------------------------------------------------------------------------


def _slug(heading: str) -> str:
    """The anchor GitHub gives a Markdown heading."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def _anchors(page: Path) -> set[str]:
    text = _FENCE.sub("", page.read_text(encoding="utf-8"))
    return {_slug(h) for h in re.findall(r"^#+ (.+)$", text, re.MULTILINE)}


@pytest.mark.parametrize("page", sorted(p.name for p in DOCS.glob("*.md")))
def test_relative_links_resolve(page: str) -> None:
    source = DOCS / page
    prose = _FENCE.sub("", source.read_text(encoding="utf-8"))
    broken = []
    for target in re.findall(r"\]\(([^)\s]+)\)", prose):
        if re.match(r"[a-z]+:", target):  # http:, https:, mailto:
            continue
        path, _, anchor = target.partition("#")
        dest = (source.parent / path) if path else source
        if not dest.exists() or (anchor and dest.suffix == ".md" and anchor not in _anchors(dest)):
            broken.append(target)
    assert not broken, f"docs/{page} links to missing pages or sections: {broken}"
