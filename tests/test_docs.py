"""The documentation keeps up with the code: the hook reference is generated from the hookspecs,
every hookspec documents its arguments, and the docs link only to pages and hooks that exist."""

from __future__ import annotations

import importlib
import inspect
import re
import sys
import types
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from bestiary_testing import load_docs_script

import bestiary
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


# -- the code examples of the plugin guide run ---------------------------------------------------

_PY_FENCE = re.compile(r"^```python\n(.*?)^```", re.DOTALL | re.MULTILINE)
#: The first line of a fenced example that is a file: ``# package/module.py``, optionally followed
#: by ``(continued)`` (appended to the same file) or by ``: comment``.
_FILE_LINE = re.compile(r"# ([\w/]+\.py)( \(continued\))?(?::.*)?$")


def doc_files(page: str) -> dict[str, str]:
    """The Python files ``page`` shows, by path, in the order a reader meets them."""
    files: dict[str, str] = {}
    for body in _PY_FENCE.findall((DOCS / page).read_text(encoding="utf-8")):
        match = _FILE_LINE.match(body.splitlines()[0])
        if match:
            path, continued = match.group(1), match.group(2)
            files[path] = files.get(path, "") + "\n" + body if continued else body
    return files


def doc_snippets(page: str, needle: str) -> list[str]:
    """The fenced Python examples of ``page`` that contain ``needle``."""
    return [b for b in _PY_FENCE.findall((DOCS / page).read_text(encoding="utf-8")) if needle in b]


@pytest.fixture
def doc_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[str, str], Path]]:
    """Write a package from a page's examples into a fresh folder on ``sys.path``."""
    written: list[str] = []

    def write(page: str, package: str) -> Path:
        root = tmp_path / "src"
        files = {p: t for p, t in doc_files(page).items() if p.startswith(f"{package}/")}
        assert files, f"{page} shows no module of {package}"
        for path, text in files.items():
            (root / path).parent.mkdir(parents=True, exist_ok=True)
            (root / path).write_text(text, encoding="utf-8")
        (root / package / "__init__.py").touch()
        monkeypatch.syspath_prepend(str(root))
        written.append(package)
        return root

    yield write
    for module in [m for m in sys.modules if m.split(".")[0] in written]:
        del sys.modules[module]


def _host_with(plugin: object, name: str) -> bestiary.PluginHost:
    host = bestiary.PluginHost(autoload=False, disabled=())
    info = host.add_plugin(plugin, name)
    assert info.status == "ok", info.error
    return bestiary.reset_host(host)


def test_the_plugin_guide_trains_and_conforms(
    doc_package: Callable[[str, str], Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("torch")
    from bestiary.testing import check_entry

    doc_package("plugins.md", "tinyzoo")
    plugin = importlib.import_module("tinyzoo.plugin")
    host = _host_with(plugin, "tinyzoo")
    assert host.plugins[-1].entries == {"architectures": 1, "datasets": 1, "metrics": 2}
    assert not {"tinyzoo.models", "tinyzoo.data", "tinyzoo.metrics"} & set(sys.modules), "registering built entries"
    for entry in bestiary.list_entries(plugin="tinyzoo"):
        report = check_entry(entry)
        assert report.ok and report.passed, str(report)

    # The guide's own Python example, as written: one step, then the validation metrics.
    (snippet,) = doc_snippets("plugins.md", "summary = train(")
    monkeypatch.chdir(tmp_path)
    scope: dict[str, object] = {}
    exec(compile(snippet, "plugins.md", "exec"), scope)  # the documented example itself
    summary = scope["summary"]
    assert isinstance(summary, dict) and summary["steps"] == 1
    final = summary["final"]
    assert set(final) == {"loss", "accuracy", "error_rate", "median_true_prob"}
    assert final["accuracy"] + final["error_rate"] == pytest.approx(1.0)
    assert 0.0 <= final["median_true_prob"] <= 1.0


def test_the_forecasting_model_example_keeps_the_contract(doc_package: Callable[[str, str], Path]) -> None:
    torch = pytest.importorskip("torch")
    from bestiary.testing import check_architecture

    doc_package("timeseries.md", "quantzoo")

    class Quantzoo:
        @staticmethod
        @bestiary.hookimpl
        def register_architectures(register):  # type: ignore[no-untyped-def]
            register("quantile_linear", "quantzoo.model:QuantileLinear", task="forecasting",
                     metadata={"probabilistic": True})

    _host_with(Quantzoo(), "quantzoo")
    assert check_architecture("quantzoo:quantile_linear").ok
    # Its own loss reaches every quantile: each row of the head gets a gradient.
    model = bestiary.build("architectures", "quantzoo:quantile_linear", prediction_length=4, context_length=6)
    batch = {"past_target": torch.rand(3, 5) + 1, "future_target": torch.rand(3, 4) + 1}
    model(batch)["loss"].backward()
    assert bool((model.head.weight.grad.view(3, 4, -1).abs().sum((1, 2)) > 0).all())
    out = model.eval()({"past_target": torch.rand(2, 9)})
    assert set(out) == {"mean", "quantiles", "levels"} and out["quantiles"].shape == (2, 3, 4)
