"""Generate docs/config.md, the run configuration reference, from ``bestiary.engine.config.RunConfig``.

Run it after adding, removing or documenting a config field::

    python docs/gen_config.py           # rewrite docs/config.md
    python docs/gen_config.py --check   # exit 1 if docs/config.md is out of date

The dataclass is the single source: each field's name, type and default come from
``RunConfig``, its description from the string literal below it (``field_docs()``), and its
command-line form from the options of ``bestiary train`` itself, so the reference shows only flags
that exist. A field without a description is an error, so the reference can never silently miss
one. Fields that no group below names are listed under "Other fields".
"""

from __future__ import annotations

import dataclasses
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

CONFIG_MD = Path(__file__).resolve().parent / "config.md"
GENERATOR = "docs/gen_config.py"

#: Sections of the reference, in order, with the fields each shows (in this order). Names that are
#: not fields are ignored, so removing a field needs no change here.
GROUPS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    (
        "What to train",
        "The entries a run combines, and the options passed to their factories.",
        ("arch", "dataset", "model", "data", "weights", "strategy", "metrics"),
    ),
    (
        "Length and batches",
        "How long a run trains and how samples are grouped into steps.",
        ("epochs", "max_steps", "batch_size", "accumulate", "eval_batch_size"),
    ),
    (
        "Optimizer and learning rate",
        "The optimizer and the schedule it follows; the schedule advances once per optimizer step.",
        ("optimizer", "lr", "momentum", "weight_decay", "schedule", "warmup_steps", "step_size", "gamma"),
    ),
    (
        "Loss and gradients",
        "",
        ("label_smoothing", "clip_grad_norm"),
    ),
    (
        "Device, precision and speed",
        "",
        ("device", "precision", "channels_last", "compile", "num_workers"),
    ),
    (
        "Reproducibility",
        "See [Seeding and determinism](training.md#seeding-and-determinism).",
        ("seed", "deterministic"),
    ),
    (
        "Evaluation and early stopping",
        "",
        ("eval_every", "monitor", "mode", "early_stopping"),
    ),
    (
        "Logging and checkpoints",
        "",
        ("log_every", "checkpoint_every", "keep_checkpoints"),
    ),
    (
        "Where the run goes",
        "See [Runs](runs.md) for what a run directory holds.",
        ("runs_root", "run_dir", "quiet"),
    ),
)
OTHER = ("Other fields", "")

_LITERAL = re.compile(r"``(.+?)``")
_TOML_TYPES = {"int": "integer", "float": "float", "str": "string", "bool": "boolean"}

INTRO = """\
Every run is described by one `RunConfig`: a validated record of everything the run depends on,
saved in the run directory's `config.json`. This page lists its fields. The
[training guide](training.md) explains how they work together.

## Setting fields

A field can be set in four ways. On the command line they combine, each overriding the one
before:

1. a TOML file given with `--config FILE.toml`, holding fields at the top level and the `model`
   and `data` options as tables;
2. the flags of `bestiary train` (the "command line" column below);
3. `--set KEY=VALUE`, repeatable, which reaches every field, including keys inside `model` and
   `data` (`--set model.drop_rate=0.1`);
4. in Python, keyword arguments of `RunConfig(...)`, or `RunConfig.load(path, overrides, sets)`,
   which merges a file, a dict and `KEY=VALUE` strings in the same order as the command line.

```toml
# resnet18-digits.toml
dataset = "digits"
epochs = 20
batch_size = 64
lr = 0.003
schedule = "cosine"
warmup_steps = 100

[model]
drop_rate = 0.1

[data]
img_size = 48
```

```console
$ bestiary train resnet18 --config resnet18-digits.toml --epochs 30 --set model.drop_rate=0.2
```

The value of `--set` is read as a TOML value, so `--set lr=3e-4` is a float, `--set compile=true`
a boolean and `--set 'metrics=["accuracy", "top5"]'` an array; a bare word that is not valid TOML
(`--set device=cuda:1`) is taken as a string. The architecture is always the `ARCH` argument of
`bestiary train`.

Each field is checked when the config is made. A wrong type, a value out of range, a choice that
does not exist or an unknown field name (with the closest field suggested) stops the command with
a one-line message and exit code 2, before anything is built.

In the tables, *unset* means the field is empty (`None` in Python), which usually means the
behaviour described on the right. Integer values are accepted where a float is expected.
"""


class ConfigDocError(ValueError):
    """A config field lacks something the reference needs."""


@dataclass
class FieldDoc:
    """What the reference shows for one field."""

    name: str
    kind: str
    default: str
    flag: str
    doc: str


def _inline(text: str) -> str:
    """Double backticks to Markdown code spans, lines joined, table pipes escaped."""
    return _LITERAL.sub(r"`\1`", " ".join(text.split())).replace("|", "\\|")


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, dict):
        return "{}" if not value else "{ " + ", ".join(f"{k} = {_toml(v)}" for k, v in value.items()) + " }"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    return repr(value)


def default_text(f: dataclasses.Field[Any]) -> str:
    """The field's default as TOML, *unset* for ``None``, *required* when there is none."""
    if f.default is not dataclasses.MISSING:
        value = f.default
    elif f.default_factory is not dataclasses.MISSING:
        value = f.default_factory()
    else:
        return "*required*"
    if value is None:
        return "*unset*"
    if isinstance(value, dict) and not value:
        return "empty table"
    return f"`{_toml(value)}`"


def type_text(f: dataclasses.Field[Any], param: Any) -> str:
    """The field's type in TOML words, with the choices of a choice option."""
    kind = str(f.type).replace(" | None", "").replace("None | ", "")
    if kind.startswith("dict"):
        return "table"
    if kind.startswith("list"):
        inner = kind[kind.find("[") + 1 : kind.rfind("]")]
        return f"array of {_TOML_TYPES.get(inner, inner)}s"
    text = _TOML_TYPES.get(kind, kind)
    choices = getattr(getattr(param, "type", None), "choices", None)
    if choices:
        text += ": " + ", ".join(f"`{c}`" for c in choices)
    return text


def flag_text(f: dataclasses.Field[Any], param: Any) -> str:
    """How ``bestiary train`` sets the field: an argument, an option, or ``--set``."""
    import click  # the CLI's own parameter objects describe the flags

    if isinstance(param, click.Argument):
        return f"`{param.human_readable_name}` argument"
    if isinstance(param, click.Option):
        text = ", ".join(f"`{opt}`" for opt in [*param.opts, *param.secondary_opts])
        return text + " (repeatable)" if param.multiple else text
    if str(f.type).startswith("dict"):
        return f"`--set {f.name}.KEY=VALUE`"
    return f"`--set {f.name}=VALUE`"


def field_docs_of(config_cls: type, docs: dict[str, str], params: dict[str, Any]) -> list[FieldDoc]:
    """One :class:`FieldDoc` per dataclass field of ``config_cls``, in declaration order.

    :param docs: field name -> documentation string (``field_docs()``).
    :param params: parameter name -> click parameter of ``bestiary train``.
    :raises ConfigDocError: when a field has no documentation string.
    """
    out = []
    for f in dataclasses.fields(config_cls):
        doc = (docs.get(f.name) or "").strip()
        if not doc:
            raise ConfigDocError(
                f"config field {f.name!r} has no documentation: put a string literal on the line after "
                f"it in core/engine/config.py, then run `python {GENERATOR}`"
            )
        param = params.get(f.name)
        out.append(FieldDoc(f.name, type_text(f, param), default_text(f), flag_text(f, param), _inline(doc)))
    return out


def render_table(fields: list[FieldDoc]) -> str:
    lines = [
        "| field | type | default | command line | description |",
        "| --- | --- | --- | --- | --- |",
    ]
    lines += [f"| `{d.name}` | {d.kind} | {d.default} | {d.flag} | {d.doc} |" for d in fields]
    return "\n".join(lines)


PLUGIN_OPTIONS = """\
Plugins declare run options of their own (hook `add_options`, see
[Writing a plugin](plugins.md#adding-kinds-commands-and-options)). They live in the config's
`options` field, one table per plugin: `[options.<table>]` in a TOML file, a flag of the commands
named below, or `--set <table>.KEY=VALUE`. `bestiary train --help` lists the flags of every
installed plugin; the built-in plugins declare these. A table of a plugin that is not loaded
(blocked with `BESTIARY_DISABLE_PLUGINS`, or failed) is refused, naming the plugin.

The debugger's options were fields of their own before: a config file or a saved run's
`config.json` that holds `rules`, `debug_every` or `rule_options` at the top level is read as
`[options.debugger]`, and `--set rules=default` still works.
"""


def builtin_options() -> list[Any]:
    """The options that the built-in plugins declare, from a host of the built-ins alone (installed
    third-party plugins and the environment do not change the reference)."""
    from bestiary.host import PluginHost

    host = PluginHost(autoload=False, disabled=())
    builtin = {p.name for p in host.plugins if p.source == "builtin"}
    return [spec for spec in host.options() if spec.plugin in builtin]


def render_options(specs: list[Any]) -> str:
    """The table of plugin options: key, type, default, command line and help."""
    lines = [
        "| option | type | default | command line | description |",
        "| --- | --- | --- | --- | --- |",
    ]
    for spec in specs:
        key = f"{spec.table}.{spec.name}"
        kind = "table" if spec.type == "dict" else _TOML_TYPES[spec.type]
        if spec.multiple:
            kind = f"array of {kind}s"
        if spec.choices:
            kind += ": " + ", ".join(f"`{c}`" for c in spec.choices)
        default = "*unset*" if spec.default is None else f"`{_toml(spec.default)}`"
        if spec.type == "dict" or not spec.commands:
            flag = f"`--set {key}.KEY=VALUE`"
        else:
            flag = f"`{spec.cli_flag}`" + (" (repeatable)" if spec.multiple else "")
            flag += f" of {', '.join(spec.commands)}"
        lines.append(f"| `{key}` | {kind} | {default} | {flag} | {_inline(spec.help)} |")
    return "\n".join(lines)


def generate(config_cls: type | None = None, docs: dict[str, str] | None = None,
             params: dict[str, Any] | None = None, options: list[Any] | None = None) -> str:
    """The complete text of docs/config.md.

    :param options: the plugin options to list (default: the built-in plugins' ones for the real
        ``RunConfig``, none for another class).
    """
    if options is None:
        options = builtin_options() if config_cls is None else []
    if config_cls is None:
        from bestiary.engine.config import RunConfig, field_docs

        config_cls, docs = RunConfig, field_docs()
    if params is None:
        from bestiary.cli.train import train_command

        params = {p.name: p for p in train_command.params if p.name}
    described = {d.name: d for d in field_docs_of(config_cls, docs or {}, params)}
    parts = [
        "# Configuration reference",
        "",
        (
            f"<!-- Generated by {GENERATOR} from RunConfig in bestiary/engine/config.py. "
            f"Do not edit: change the field documentation there and run `python {GENERATOR}`. -->"
        ),
        "",
        INTRO.rstrip("\n"),
        "",
    ]
    placed: set[str] = set()
    for title, text, names in GROUPS:
        present = [described[n] for n in names if n in described and n not in placed]
        if not present:
            continue
        placed.update(d.name for d in present)
        parts += [f"## {title}", ""]
        if text:
            parts += [text, ""]
        parts += [render_table(present), ""]
    rest = [d for name, d in described.items() if name not in placed]
    if rest:
        parts += [f"## {OTHER[0]}", "", render_table(rest), ""]
    if options:
        parts += ["## Options of plugins", "", PLUGIN_OPTIONS.rstrip("\n"), "", render_options(options), ""]
    return "\n".join(parts).rstrip("\n") + "\n"


def main(argv: list[str] | None = None) -> int:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from _writer import run

    return run(generate, CONFIG_MD, GENERATOR, __doc__.splitlines()[0], argv)


if __name__ == "__main__":
    sys.exit(main())
