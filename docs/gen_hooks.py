"""Generate docs/hooks.md, the hook reference, from the docstrings in ``bestiary.hookspecs``.

Run it after changing a hookspec::

    python docs/gen_hooks.py           # rewrite docs/hooks.md
    python docs/gen_hooks.py --check   # exit 1 if docs/hooks.md is out of date

The hookspec docstrings are the single source: Sphinx fields (``:param x:``, ``:return:``,
``:raises E:``) become lists, ``::`` blocks become fenced code, RST roles and double backticks
become Markdown code spans. A hookspec that leaves a parameter undocumented is an error, so the
reference can never silently miss one.
"""

from __future__ import annotations

import ast
import inspect
import re
import sys
import textwrap
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

HOOKS_MD = Path(__file__).resolve().parent / "hooks.md"
GENERATOR = "docs/gen_hooks.py"

_ROLE = re.compile(r":(?:py:)?(?:class|meth|func|data|mod|attr|exc|obj|const):`~?([^`]+)`")
_LITERAL = re.compile(r"``(.+?)``")
_FIELD = re.compile(r"^:(\w+)(?:\s+([^:]+))?:\s*(.*)$")
_UNDERLINE = re.compile(r"^(-{3,}|={3,}|~{3,})$")


class HookDocError(ValueError):
    """A hookspec docstring is missing something the reference needs."""


@dataclass
class HookDoc:
    """What the reference shows for one hook."""

    name: str
    signature: str
    options: dict[str, Any]
    body: str
    params: dict[str, str] = field(default_factory=dict)
    returns: str | None = None
    raises: list[tuple[str, str]] = field(default_factory=list)


def spec_marker(hookspecs: ModuleType) -> str:
    """The attribute pluggy sets on hookspec functions (``bestiary_spec``)."""
    return f"{hookspecs.PROJECT}_spec"


def hookspec_functions(hookspecs: ModuleType) -> list[Callable[..., Any]]:
    """Every hookspec function of the module, in declaration order."""
    marker = spec_marker(hookspecs)
    return [obj for obj in vars(hookspecs).values() if inspect.isfunction(obj) and hasattr(obj, marker)]


def hook_arguments(func: Callable[..., Any]) -> list[str]:
    """The arguments a hookspec passes to its implementations."""
    return list(inspect.signature(func).parameters)


# -- docstring to Markdown ---------------------------------------------------------------------


def _inline(text: str) -> str:
    """RST roles and double backticks to Markdown code spans."""
    return _LITERAL.sub(r"`\1`", _ROLE.sub(r"``\1``", text))


def _fence_language(block: str) -> str:
    try:
        tomllib.loads(block)
        return "toml"
    except tomllib.TOMLDecodeError:
        pass
    try:
        ast.parse(block)
        return "python"
    except SyntaxError:
        return ""


def rst_to_markdown(text: str, heading_level: int = 2) -> str:
    """Convert the small RST subset used in docstrings to Markdown.

    Handles paragraphs, ``Title`` / ``-----`` section headings, ``::`` literal blocks and inline
    literals. Lines stay as written: Markdown joins them into paragraphs.
    """
    lines = textwrap.dedent(text).strip("\n").splitlines()
    out: list[str] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        nxt = lines[i + 1] if i + 1 < len(lines) else ""
        if line.strip() and _UNDERLINE.match(nxt.strip()) and len(nxt.strip()) >= len(line.strip()):
            out += ["#" * heading_level + " " + _inline(line.strip()), ""]
            i += 2
            continue
        if line.rstrip().endswith("::"):
            stripped = line.rstrip()[:-2].rstrip()
            if stripped:
                out.append(_inline(stripped) + ":")
            i += 1
            block: list[str] = []
            while i < len(lines) and (not lines[i].strip() or lines[i].startswith((" ", "\t"))):
                block.append(lines[i])
                i += 1
            code = textwrap.dedent("\n".join(block)).strip("\n")
            if out and out[-1]:
                out.append("")
            out += [f"```{_fence_language(code)}", code, "```", ""]
            continue
        out.append(_inline(line))
        i += 1
    while out and not out[-1]:
        out.pop()
    return "\n".join(out)


def parse_hook(func: Callable[..., Any], marker: str) -> HookDoc:
    """Split a hookspec docstring into description and Sphinx fields."""
    doc = inspect.getdoc(func)
    if not doc:
        raise HookDocError(f"hookspec {func.__name__!r} has no docstring")
    lines = doc.splitlines()
    start = next((n for n, line in enumerate(lines) if _FIELD.match(line)), len(lines))
    body = "\n".join(lines[:start])
    params: dict[str, str] = {}
    returns: str | None = None
    raises: list[tuple[str, str]] = []
    current: list[str] | None = None
    for line in lines[start:]:
        match = _FIELD.match(line)
        if match:
            kind, arg, text = match.groups()
            current = [text.strip()]
            if kind == "param" and arg:
                params[arg.split()[-1]] = current  # type: ignore[assignment]
            elif kind in ("return", "returns"):
                returns = current  # type: ignore[assignment]
            elif kind == "raises" and arg:
                raises.append((arg.strip(), current))  # type: ignore[arg-type]
            else:
                raise HookDocError(f"hookspec {func.__name__!r}: unsupported docstring field {line!r}")
        elif current is not None and line.strip():
            current.append(line.strip())
        elif line.strip():
            raise HookDocError(f"hookspec {func.__name__!r}: text after the fields: {line!r}")

    def joined(parts: Any) -> str:
        return _inline(" ".join(parts))

    sig = inspect.signature(func)
    args = ", ".join(
        f"{p.name}: {p.annotation}" if p.annotation is not p.empty else p.name
        for p in sig.parameters.values()
    )
    ret = "" if sig.return_annotation is sig.empty else f" -> {sig.return_annotation}"
    hook = HookDoc(
        name=func.__name__,
        signature=f"def {func.__name__}({args}){ret}",
        options=dict(getattr(func, marker)),
        body=body,
        params={name: joined(text) for name, text in params.items()},
        returns=None if returns is None else joined(returns),
        raises=[(exc, joined(text)) for exc, text in raises],
    )
    missing = [a for a in hook_arguments(func) if a not in hook.params]
    if missing:
        raise HookDocError(
            f"hookspec {func.__name__!r} does not document argument(s) {', '.join(missing)}: "
            f"add `:param <name>:` lines to its docstring"
        )
    unknown = [a for a in hook.params if a not in hook_arguments(func)]
    if unknown:
        raise HookDocError(f"hookspec {func.__name__!r} documents argument(s) it does not have: {unknown}")
    return hook


def _calling(hook: HookDoc, register_prefix: str) -> str:
    if hook.name.startswith(register_prefix):
        kind = hook.name[len(register_prefix) :]
        return (
            f"Registration hook for the kind `{kind}`: the host calls each plugin's implementation "
            f"once, when plugins load, with a `register` callback that adds entries to the table "
            f"`{kind}`."
        )
    if hook.options.get("firstresult"):
        text = "firstresult: implementations are called in turn until one returns a value other than `None`."
    else:
        text = "Not firstresult: every plugin that implements it is called."
    if hook.options.get("historic"):
        text += " Historic: a plugin registered late still receives the calls made before."
    return text


def render_hook(hook: HookDoc, register_prefix: str) -> str:
    parts = [f"### {hook.name}", "", "```python", hook.signature, "```", ""]
    parts += [rst_to_markdown(hook.body, heading_level=4), ""]
    parts += [_calling(hook, register_prefix), ""]
    if hook.params:
        parts += ["**Parameters**", ""]
        parts += [f"- `{name}`: {text}" for name, text in hook.params.items()]
        parts.append("")
    if hook.returns is not None:
        parts += [f"**Returns**: {hook.returns}", ""]
    if hook.raises:
        parts += ["**Raises**", ""]
        parts += [f"- `{exc}`: {text}" for exc, text in hook.raises]
        parts.append("")
    return "\n".join(parts)


def _summary(body: str) -> str:
    """The first sentence-paragraph of a docstring, on one line."""
    return " ".join(body.strip().split("\n\n")[0].split())


def _without_summary(doc: str) -> str:
    """A docstring less its one-line summary, which the page title already says."""
    _, _, rest = inspect.cleandoc(doc).partition("\n")
    return rest


def generate(hookspecs: ModuleType | None = None) -> str:
    """The complete text of docs/hooks.md."""
    if hookspecs is None:
        from bestiary import hookspecs as module

        hookspecs = module
    marker = spec_marker(hookspecs)
    prefix = getattr(hookspecs, "REGISTER_PREFIX", "register_")
    hooks = [parse_hook(func, marker) for func in hookspec_functions(hookspecs)]
    parts = [
        "# Hook reference",
        "",
        (
            f"<!-- Generated by {GENERATOR} from the docstrings in bestiary/hookspecs.py. "
            f"Do not edit: change the docstrings and run `python {GENERATOR}`. -->"
        ),
        "",
        (
            "Every extension point of bestiary is a hook declared in `bestiary.hookspecs`. A plugin "
            "implements a hook by defining a function of the same name marked with "
            "`@bestiary.hookimpl`; it may accept any subset of the hook's arguments. See "
            "[the plugin author's guide](plugins.md) for a complete plugin."
        ),
        "",
        rst_to_markdown(_without_summary(hookspecs.__doc__ or ""), heading_level=2),
        "",
        "## Hooks",
        "",
    ]
    parts += [f"- [`{h.name}`](#{h.name}): {_inline(_summary(h.body))}" for h in hooks]
    parts.append("")
    for hook in hooks:
        parts.append(render_hook(hook, prefix))
    return "\n".join(parts).rstrip("\n") + "\n"


def main(argv: list[str] | None = None) -> int:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from _writer import run

    return run(generate, HOOKS_MD, GENERATOR, __doc__.splitlines()[0], argv)


if __name__ == "__main__":
    sys.exit(main())
