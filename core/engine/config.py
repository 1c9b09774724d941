"""The run configuration: one validated, JSON-able record of everything a run depends on.

Built from CLI flags, a TOML file, ``--set key=value`` overrides or Python keyword arguments. Each
field is checked on construction, and errors name the field, the bad value and what is allowed.
"""

from __future__ import annotations

import dataclasses
import difflib
import itertools
import math
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from ..errors import ConfigError

OPTIMIZERS = ("adamw", "sgd")
SCHEDULES = ("constant", "cosine", "step", "onecycle")
PRECISIONS = ("fp32", "bf16", "fp16")
MODES = ("max", "min")
SPLITS = ("train", "validation", "test")


@dataclass(frozen=True)
class RunConfig:
    """Everything one run depends on. Field docs double as the config reference."""

    arch: str
    """Architecture name (bare or plugin:name)."""
    dataset: str
    """Dataset name (bare or plugin:name)."""
    strategy: str = "single"
    """Scaling strategy name."""
    strategy_options: dict[str, Any] = field(default_factory=dict)
    """Keyword options for the strategy, e.g. ``{bucket_cap_mb = 25}`` for ddp (see docs/scaling.md)."""
    model: dict[str, Any] = field(default_factory=dict)
    """Extra keyword arguments for the architecture factory."""
    data: dict[str, Any] = field(default_factory=dict)
    """Extra keyword arguments for the dataset factory."""
    weights: str | None = None
    """Local file of pretrained weights (.safetensors or a torch/timm checkpoint); tensors whose shape
    differs (a classifier for other classes) stay freshly initialised."""
    metrics: list[str] | None = None
    """Metric names to report; default: the task's default metrics."""
    epochs: int = 1
    """Passes over the training split (``max_steps`` stops earlier)."""
    max_steps: int | None = None
    """Stop after this many optimizer steps."""
    batch_size: int = 32
    """Samples per micro-batch and process."""
    eval_batch_size: int | None = None
    """Batch size for evaluation; default: ``batch_size``."""
    accumulate: int = 1
    """Micro-batches per optimizer step (gradient accumulation)."""
    optimizer: str = "adamw"
    """``adamw`` or ``sgd`` (with momentum)."""
    lr: float | None = None
    """Peak learning rate; default 1e-3 for adamw, 0.1 for sgd."""
    momentum: float = 0.9
    """SGD momentum."""
    weight_decay: float = 0.0
    """Decoupled (adamw) or L2 (sgd) weight decay; not applied to biases and norms."""
    schedule: str = "cosine"
    """Learning-rate schedule: constant, cosine, step or onecycle."""
    warmup_steps: int = 0
    """Linear warm-up steps before the schedule (not used by onecycle)."""
    step_size: int = 1000
    """Step schedule: optimizer steps between decays."""
    gamma: float = 0.1
    """Step schedule: decay factor."""
    label_smoothing: float = 0.0
    """Label smoothing for classification losses."""
    clip_grad_norm: float | None = None
    """Clip the global gradient norm to this value."""
    precision: str = "fp32"
    """fp32, bf16 (autocast on CPU and CUDA) or fp16 (CUDA, with a grad scaler)."""
    channels_last: bool = False
    """Use channels-last memory format for 4-D inputs and models."""
    compile: bool = False
    """Compile the model with torch.compile."""
    device: str = "auto"
    """auto, cpu, cuda or cuda:N."""
    seed: int = 0
    """Seed for every random number generator (recorded; runs are seeded by default)."""
    deterministic: bool = False
    """Ask torch for deterministic algorithms (slower on GPU)."""
    num_workers: int = 0
    """Data-loader worker processes."""
    monitor: str | None = None
    """Validation metric for best-model tracking and early stopping; default: the task's."""
    mode: str | None = None
    """max or min for ``monitor``; default: from the metric."""
    early_stopping: int | None = None
    """Stop after this many evaluations without improvement of ``monitor``."""
    eval_every: int = 1
    """Evaluate on the validation split every this many epochs."""
    log_every: int = 10
    """Write training metrics every this many optimizer steps."""
    checkpoint_every: int | None = None
    """Write a checkpoint every this many optimizer steps (and always at the end)."""
    keep_checkpoints: int = 2
    """How many checkpoints to keep."""
    runs_root: str = "runs"
    """Folder holding run directories and the runs index."""
    run_dir: str | None = None
    """This run's directory; default: a new folder under ``runs_root``."""
    quiet: bool = False
    """No progress bar."""
    options: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Options that plugins declare, by table: ``[options.<table>]`` (see ``bestiary.options``); the
    debugger's ``rules``, ``debug_every`` and ``rule_options`` are in ``[options.debugger]``."""

    def __post_init__(self) -> None:
        _validate(self)

    def replace(self, **changes: Any) -> RunConfig:
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> RunConfig:
        """A config from a dict (a TOML file, a saved ``config.json``); keys of older configs move to
        where they live now (see :data:`MOVED`)."""
        values = migrate(values)
        names = {f.name for f in fields(cls)}
        unknown = [k for k in values if k not in names]
        if unknown:
            key = unknown[0]
            close = difflib.get_close_matches(key, names, n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise ConfigError(f"unknown config field {key!r}.{hint} Fields: {', '.join(sorted(names))}")
        for required in ("arch", "dataset"):
            if values.get(required) in (None, ""):
                raise ConfigError(f"config field {required!r} is required")
        return cls(**values)

    @classmethod
    def load(
        cls, path: str | Path | None = None, overrides: Mapping[str, Any] | None = None, sets: Sequence[str] = ()
    ) -> RunConfig:
        """Merge a TOML file, explicit overrides (flags) and ``key=value`` strings, in that order."""
        values: dict[str, Any] = {}
        if path is not None:
            try:
                values.update(tomllib.loads(Path(path).read_text(encoding="utf-8")))  # TOML is UTF-8 by spec
            except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
                raise ConfigError(f"config file {path} is not valid TOML: {exc}") from exc
            except OSError as exc:  # the bare error names neither the option nor what to pass
                raise ConfigError(f"config file {path} cannot be read ({exc.strerror}); pass a TOML file with --config") from exc
        values.update({k: v for k, v in (overrides or {}).items() if v is not None})
        for item in sets:
            apply_set(values, item)
        return cls.from_dict(values)


#: Top-level keys of configs written before a plugin declared them as its options -> the options
#: table they now live in. Saved runs (``config.json``) and config files keep working unchanged.
MOVED: dict[str, str] = {"rules": "debugger", "debug_every": "debugger", "rule_options": "debugger"}


def migrate(values: Mapping[str, Any]) -> dict[str, Any]:
    """``values`` with the keys of :data:`MOVED` moved into ``options.<table>``; a value given in the
    table already wins, and an empty one (``None``, ``{}``: the old defaults of unused fields) is
    dropped, since TOML has no null."""
    out = dict(values)
    if not any(key in out for key in MOVED):
        return out
    options = {t: dict(v) if isinstance(v, Mapping) else v for t, v in (out.get("options") or {}).items()}
    for key, table in MOVED.items():
        if key not in out:
            continue
        value = out.pop(key)
        if value is None or value == {}:
            continue
        target = options.setdefault(table, {})
        if isinstance(target, dict):
            target.setdefault(key, value)
    if options:
        out["options"] = options
    return out


def apply_set(values: dict[str, Any], item: str) -> None:
    """Apply one ``key=value`` (``model.drop_rate=0.1`` reaches into a table)."""
    key, sep, raw = item.partition("=")
    if not sep or not key:
        raise ConfigError(f"--set expects key=value, got {item!r}")
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw  # a bare word is a string
    *parents, last = key.strip().split(".")
    target = values
    for p in parents:
        target = target.setdefault(p, {})
        if not isinstance(target, dict):
            raise ConfigError(f"--set {item!r}: {p!r} is not a table")
    target[last] = value


_TYPES: dict[str, tuple[type, ...]] = {"int": (int,), "float": (int, float), "bool": (bool,), "str": (str,)}


def _validate(cfg: RunConfig) -> None:
    for f in fields(cfg):
        value = getattr(cfg, f.name)
        kind = str(f.type).replace(" | None", "")
        if value is None and "None" in str(f.type):
            continue
        if kind in _TYPES:
            ok = isinstance(value, _TYPES[kind]) and not (kind != "bool" and isinstance(value, bool))
            if not ok:
                raise ConfigError(f"config field {f.name!r}: expected {kind}, got {value!r}")
            # NaN slips through every comparison below and inf trains to a NaN loss with exit 0.
            if kind == "float" and not math.isfinite(value):
                raise ConfigError(f"config field {f.name!r}: must be a finite number, got {value!r}")
        elif kind.startswith("dict") and not isinstance(value, dict):
            raise ConfigError(f"config field {f.name!r}: expected a table of options, got {value!r}")
        elif kind.startswith("list") and not (
            isinstance(value, list) and all(isinstance(v, str) for v in value)
        ):
            raise ConfigError(f"config field {f.name!r}: expected a list of names, got {value!r}")
    _choice(cfg, "optimizer", OPTIMIZERS)
    _choice(cfg, "schedule", SCHEDULES)
    _choice(cfg, "precision", PRECISIONS)
    if cfg.mode is not None:
        _choice(cfg, "mode", MODES)
    for name in ("epochs", "batch_size", "accumulate", "log_every", "eval_every", "keep_checkpoints", "step_size"):
        _positive(cfg, name)
    for name in ("max_steps", "eval_batch_size", "checkpoint_every", "early_stopping"):
        if getattr(cfg, name) is not None:
            _positive(cfg, name)
    for name in ("warmup_steps", "num_workers", "weight_decay", "momentum", "seed"):
        if getattr(cfg, name) < 0:
            raise ConfigError(f"config field {name!r}: must be >= 0, got {getattr(cfg, name)!r}")
    if cfg.lr is not None and not cfg.lr > 0:
        raise ConfigError(f"config field 'lr': must be > 0, got {cfg.lr!r}")
    if not 0 <= cfg.label_smoothing < 1:
        raise ConfigError(f"config field 'label_smoothing': must be in [0, 1), got {cfg.label_smoothing!r}")
    if cfg.clip_grad_norm is not None and not cfg.clip_grad_norm > 0:
        raise ConfigError(f"config field 'clip_grad_norm': must be > 0, got {cfg.clip_grad_norm!r}")
    if not (cfg.device in ("auto", "cpu", "cuda") or cfg.device.startswith("cuda:")):
        raise ConfigError(f"config field 'device': {cfg.device!r} is not one of auto, cpu, cuda, cuda:N")


def _choice(cfg: RunConfig, name: str, allowed: tuple[str, ...]) -> None:
    value = getattr(cfg, name)
    if value not in allowed:
        raise ConfigError(f"config field {name!r}: {value!r} is not one of {', '.join(allowed)}")


def _positive(cfg: RunConfig, name: str) -> None:
    value = getattr(cfg, name)
    if value < 1:
        raise ConfigError(f"config field {name!r}: must be >= 1, got {value!r}")


def field_docs() -> dict[str, str]:
    """Field name -> its documentation string, read from this module's source."""
    import ast
    import inspect

    tree = ast.parse(inspect.getsource(RunConfig))
    body = tree.body[0].body  # type: ignore[attr-defined]
    docs: dict[str, str] = {}
    for node, nxt in itertools.pairwise(body):
        if isinstance(node, ast.AnnAssign) and isinstance(nxt, ast.Expr) and isinstance(nxt.value, ast.Constant):
            docs[node.target.id] = str(nxt.value.value)  # type: ignore[union-attr]
    return docs
