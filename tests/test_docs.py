"""The documentation keeps up with the code: the hook reference is generated from the hookspecs,
every hookspec documents its arguments, and the docs link only to pages and hooks that exist."""

from __future__ import annotations


import inspect
import re
import types
from pathlib import Path

import pytest
from bestiary_testing import load_docs_script
from bestiary import hookspecs

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
HOOKS_MD = DOCS / "hooks.md"
REGENERATE = "run `python docs/gen_hooks.py` and commit docs/hooks.md"

MARKER = f"{hookspecs.PROJECT}_spec"
HOOKSPECS = {
    name: obj for name, obj in vars(hookspecs).items() if inspect.isfunction(obj) and hasattr(obj, MARKER)
}

_FENCE = re.compile(r"^```.*?^```", re.DOTALL | re.MULTILINE)


@pytest.fixture(scope="module")
def gen_hooks() -> types.ModuleType:
    return load_docs_script("gen_hooks")


def _hook_headings() -> list[str]:
    return re.findall(r"^### (\S+)\s*$", HOOKS_MD.read_text(encoding="utf-8"), re.MULTILINE)


def test_hookspecs_are_found() -> None:
    assert HOOKSPECS, "no function carrying the `bestiary_spec` attribute in bestiary.hookspecs"


@pytest.mark.parametrize("name", sorted(HOOKSPECS))
def test_hookspec_documents_every_argument(name: str) -> None:
    func = HOOKSPECS[name]
    doc = inspect.getdoc(func)
    assert doc, f"hookspec {name!r} has no docstring"
    missing = [
        arg
        for arg in inspect.signature(func).parameters
        if not re.search(rf"^:param\s+(?:[^:\s]+\s+)?{re.escape(arg)}:", doc, re.MULTILINE)
    ]
    assert not missing, f"hookspec {name!r} lacks `:param <arg>:` for {missing} in its docstring"


@pytest.mark.parametrize("name", sorted(HOOKSPECS))
def test_every_hookspec_has_a_section(name: str) -> None:
    assert name in _hook_headings(), f"docs/hooks.md has no `### {name}` section; {REGENERATE}"


def test_hook_reference_names_no_unknown_hook() -> None:
    text = HOOKS_MD.read_text(encoding="utf-8")
    headings = _hook_headings()
    anchors = re.findall(r"\]\(#([^)]+)\)", text)
    unknown = sorted({n for n in headings + anchors if n not in HOOKSPECS})
    assert not unknown, f"docs/hooks.md names hooks that do not exist: {unknown}; {REGENERATE}"
    assert len(headings) == len(set(headings)), f"docs/hooks.md has a hook section twice; {REGENERATE}"


def test_docs_mention_only_existing_hooks() -> None:
    # Inline code spans only: fenced examples may show a misspelt hook on purpose.
    unknown: dict[str, list[str]] = {}
    for page in DOCS.glob("*.md"):
        prose = _FENCE.sub("", page.read_text(encoding="utf-8"))
        for name in re.findall(r"`@?((?:register|on)_[a-z_]+)(?:\(\))?`", prose):
            if name not in HOOKSPECS:
                unknown.setdefault(page.name, []).append(name)
    assert not unknown, f"the docs name hooks that do not exist: {unknown}"


def test_hook_reference_is_up_to_date(gen_hooks: types.ModuleType) -> None:
    expected = gen_hooks.generate(hookspecs)
    current = HOOKS_MD.read_text(encoding="utf-8") if HOOKS_MD.exists() else ""
    assert current == expected, f"docs/hooks.md differs from the hookspec docstrings: {REGENERATE}"


def test_generator_rejects_an_undocumented_argument(gen_hooks: types.ModuleType) -> None:
    fake = types.ModuleType("fake_hookspecs")
    fake.PROJECT = hookspecs.PROJECT  # type: ignore[attr-defined]

    @hookspecs.hookspec
    def register_things(register, extra):  # type: ignore[no-untyped-def]
        """Register things.

        :param register: the callback.
        """

    fake.register_things = register_things  # type: ignore[attr-defined]
    with pytest.raises(gen_hooks.HookDocError, match="extra"):
        gen_hooks.generate(fake)


def test_generator_converts_rst(gen_hooks: types.ModuleType) -> None:
    text = gen_hooks.rst_to_markdown(
        "Use :class:`bestiary.Entry` and ``name``::\n\n    [project]\n    name = 'x'\n\nTitle\n-----\nBody"
    )
    assert text.splitlines() == [
        "Use `bestiary.Entry` and `name`:",
        "",
        "```toml",
        "[project]",
        "name = 'x'",
        "```",
        "",
        "## Title",
        "",
        "Body",
    ]


def test_relative_links_resolve() -> None:
    broken = []
    for page in DOCS.glob("*.md"):
        prose = _FENCE.sub("", page.read_text(encoding="utf-8"))
        for target in re.findall(r"\]\(([^)\s]+)\)", prose):
            if re.match(r"[a-z]+:", target):  # http:, https:, mailto:
                continue
            path, _, anchor = target.partition("#")
            dest = (page.parent / path) if path else page
            if not dest.exists():
                broken.append(f"{page.name}: {target}")
            elif anchor and dest.name == "hooks.md" and anchor in HOOKSPECS:
                continue
            elif anchor and dest.suffix == ".md":
                slugs = {
                    _slug(h) for h in re.findall(r"^#+ (.+)$", dest.read_text(encoding="utf-8"), re.MULTILINE)
                }
                if anchor not in slugs:
                    broken.append(f"{page.name}: {target}")
    assert not broken, f"links to missing pages or sections: {broken}"


def _slug(heading: str) -> str:
    """The anchor GitHub gives a Markdown heading."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")
