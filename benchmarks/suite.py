"""Benchmark suites: a TOML file naming a measurement and a matrix, expanded into cells.

A suite is read, validated and expanded here without importing torch: ``bestiary bench list``
stays cheap. A suite file looks like::

    description = "Quality of small models on shipped data"
    measure = "quality"            # quality, throughput, scaling or registry
    repeats = 1                    # default; `bestiary bench run --repeats N` overrides it

    [config]                       # run config fields for every run (quality and scaling)
    device = "cpu"

    [settings]                     # options of the measurement (see MEASURES)
    split = "test"

    [[matrix]]                     # one or more groups; each is a full cross product
    architectures = ["resnet18", "vit_*"]   # names, or fnmatch patterns matched in the registry
    exclude = ["vit_large*"]
    datasets = ["digits"]
    config = { epochs = 3, batch_size = 64 }
    target = { metric = "accuracy", value = 0.9 }

Names given explicitly that no plugin registers, and patterns that match nothing, become cells
that fail with the lookup error, so that a sweep reports them and carries on.
"""

from __future__ import annotations

import fnmatch
import itertools
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ConfigError

#: measurement -> settings it accepts, with their defaults
MEASURES: dict[str, dict[str, Any]] = {
    "quality": {"split": "test", "keep_checkpoints": False, "threads": None},
    "throughput": {"warmup": 10, "iterations": 30, "input_size": [3, 224, 224], "num_classes": 1000,
                   "device": "auto", "train": True, "inference": True, "bare": False, "optimizer": "sgd",
                   "threads": None, "model": {}},
    "scaling": {"threads": 1, "timeout_s": 900},
    "registry": {"runs": 5},
}
#: matrix keys that take lists, and their defaults
AXES: dict[str, list[Any]] = {
    "architectures": [], "datasets": [], "strategies": ["single"], "world_sizes": [1], "precisions": ["fp32"],
    "batch_sizes": [], "compile": [False], "channels_last": [False], "probes": [],
}
GROUP_KEYS = {*AXES, "exclude", "task", "config", "settings", "target", "label"}
SUITE_KEYS = {"description", "measure", "repeats", "config", "settings", "matrix", "name"}
PROBES = ("import", "list", "lookup", "heavy_imports")


@dataclass
class Cell:
    """One measurement of a suite: an architecture on a dataset under one setting.

    :ivar error: why the cell cannot run (an unknown name); it becomes an error row.
    """

    suite: str
    measure: str
    arch: str | None = None
    dataset: str | None = None
    strategy: str = "single"
    world_size: int = 1
    precision: str = "fp32"
    batch_size: int | None = None
    compile: bool = False
    channels_last: bool = False
    probe: str | None = None
    config: dict[str, Any] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)
    target: dict[str, Any] | None = None
    error: str | None = None

    @property
    def labels(self) -> dict[str, Any]:
        """What tells this cell from the others of its suite, in a fixed order."""
        out: dict[str, Any] = {}
        if self.probe is not None:
            out["probe"] = self.probe
        if self.arch is not None:
            out["arch"] = self.arch
        if self.dataset is not None:
            out["dataset"] = self.dataset
        if self.measure != "registry":
            out.update(strategy=self.strategy, world_size=self.world_size, precision=self.precision,
                       batch_size=self.batch_size, compile=self.compile, channels_last=self.channels_last)
        return out

    @property
    def id(self) -> str:
        """A stable name, the key a rerun uses to skip finished cells."""
        parts = [str(v) for k, v in self.labels.items() if k in ("probe", "arch", "dataset", "strategy")]
        if self.measure != "registry":
            parts += [f"w{self.world_size}", self.precision, f"b{self.batch_size or 'default'}"]
            parts += ["compile"] if self.compile else []
            parts += ["cl"] if self.channels_last else []
        return "/".join(parts)

    def matches(self, pattern: str) -> bool:
        """Whether ``pattern`` (fnmatch) matches the whole id or one of its ``/`` parts."""
        return fnmatch.fnmatchcase(self.id, pattern) or any(fnmatch.fnmatchcase(p, pattern) for p in self.id.split("/"))


@dataclass
class Suite:
    """A validated suite: its measurement, defaults and matrix groups.

    :param name: the suite's name (the registry name, or the file stem).
    :param measure: one of :data:`MEASURES`.
    :param description: one line for ``bestiary bench list``.
    :param repeats: measurements per cell, aggregated as median, min and max.
    :param config: run config fields shared by every group.
    :param settings: measurement settings shared by every group.
    :param matrix: the groups, each a cross product of its axes.
    :param source: where the suite was read from.
    """

    name: str
    measure: str
    description: str
    repeats: int = 1
    config: dict[str, Any] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)
    matrix: list[dict[str, Any]] = field(default_factory=list)
    source: str = ""

    def cells(self, host: Any = None) -> list[Cell]:
        """Every cell of the matrix, patterns resolved in the registry of ``host``."""
        from ..host import get_host

        registry = (host or get_host()).registry
        out: list[Cell] = []
        seen: set[str] = set()
        for group in self.matrix:
            for cell in _expand(self, group, registry):
                if cell.id not in seen:
                    seen.add(cell.id)
                    out.append(cell)
        return out


def parse_suite(values: Mapping[str, Any], name: str, source: str = "") -> Suite:
    """Validate the contents of a suite file; errors name the key and what is allowed."""
    where = f"suite {name!r}" + (f" ({source})" if source else "")
    unknown = sorted(set(values) - SUITE_KEYS)
    if unknown:
        raise ConfigError(f"{where}: unknown key {unknown[0]!r}; a suite has {', '.join(sorted(SUITE_KEYS))}")
    measure = values.get("measure")
    if measure not in MEASURES:
        raise ConfigError(f"{where}: measure must be one of {', '.join(MEASURES)}, got {measure!r}")
    description = values.get("description", "")
    if not isinstance(description, str) or not description:
        raise ConfigError(f"{where}: give a one-line description")
    repeats = values.get("repeats", 1)
    if not isinstance(repeats, int) or isinstance(repeats, bool) or repeats < 1:
        raise ConfigError(f"{where}: repeats must be an integer >= 1, got {repeats!r}")
    config = _table(values, "config", where)
    settings = _settings(measure, _table(values, "settings", where), where)
    matrix = values.get("matrix")
    if not isinstance(matrix, list) or not matrix or not all(isinstance(g, dict) for g in matrix):
        raise ConfigError(f"{where}: give at least one [[matrix]] group")
    groups = [_group(measure, g, f"{where}, matrix group {i + 1}") for i, g in enumerate(matrix)]
    return Suite(str(values.get("name", name)), measure, description, repeats, config, settings, groups, source)


def read_suite(path: str | Path, name: str | None = None) -> Suite:
    """Read a suite from a TOML file (its name defaults to the file's stem)."""
    path = Path(path)
    try:
        values = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"suite file {path} is not valid TOML: {exc}") from exc
    return parse_suite(values, name or path.stem, str(path))


def load_suite(package: str, resource: str, name: str | None = None) -> Suite:
    """Factory of suite entries: the TOML file ``resource`` shipped as package data of ``package``.

    Plugins register their own suites with it::

        register("my_suite", "bestiary.benchmarks.suite:load_suite", description="...",
                 defaults={"package": "myzoo", "resource": "suites/my_suite.toml"})

    :param package: an importable package holding the file.
    :param resource: the file's path inside the package.
    :param name: the suite's name; default: the file's stem.
    """
    from importlib.resources import files

    ref = files(package).joinpath(*resource.split("/"))
    try:
        text = ref.read_text(encoding="utf-8")
    except (FileNotFoundError, IsADirectoryError) as exc:
        raise ConfigError(f"suite file {resource!r} is missing from package {package!r}; is it listed as "
                          "package data in the plugin's pyproject.toml?") from exc
    try:
        values = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"suite file {resource} of {package} is not valid TOML: {exc}") from exc
    return parse_suite(values, name or Path(resource).stem, f"{package}/{resource}")


def resolve_suite(name_or_path: str, host: Any = None) -> Suite:
    """A registered suite by name, or a suite file by path (``*.toml``)."""
    from ..host import get_host

    path = Path(name_or_path)
    if name_or_path.endswith(".toml") or path.is_file():
        if not path.is_file():
            raise ConfigError(f"suite file {path} does not exist")
        return read_suite(path)
    entry = (host or get_host()).registry.table("benchmarks").get(name_or_path)
    suite = entry.build()
    if isinstance(suite, Mapping):
        suite = parse_suite(suite, entry.name, entry.qualified_name)
    if not isinstance(suite, Suite):
        raise TypeError(f"benchmark entry {entry.qualified_name!r} built {type(suite).__name__}, not a Suite; "
                        f"its factory should return bestiary.benchmarks.suite.load_suite(...)")
    suite.name = entry.name
    return suite


# -- validation ------------------------------------------------------------------------------


def _table(values: Mapping[str, Any], key: str, where: str) -> dict[str, Any]:
    table = values.get(key, {})
    if not isinstance(table, dict):
        raise ConfigError(f"{where}: {key} must be a table, got {table!r}")
    return dict(table)


def _settings(measure: str, settings: dict[str, Any], where: str) -> dict[str, Any]:
    allowed = MEASURES[measure]
    unknown = sorted(set(settings) - set(allowed))
    if unknown:
        raise ConfigError(f"{where}: unknown {measure} setting {unknown[0]!r}; settings: {', '.join(sorted(allowed))}")
    return settings


def _group(measure: str, group: dict[str, Any], where: str) -> dict[str, Any]:
    unknown = sorted(set(group) - GROUP_KEYS)
    if unknown:
        raise ConfigError(f"{where}: unknown key {unknown[0]!r}; a group has {', '.join(sorted(GROUP_KEYS))}")
    out = dict(group)
    for axis, default in AXES.items():
        value = out.get(axis, default)
        if not isinstance(value, list):
            value = [value]
        out[axis] = value
    if measure == "registry":
        bad = [p for p in out["probes"] if p not in PROBES]
        if not out["probes"] or bad:
            raise ConfigError(f"{where}: probes must be a list of {', '.join(PROBES)}, got {out['probes']!r}")
    else:
        if not out["architectures"]:
            raise ConfigError(f"{where}: give architectures (names or patterns)")
        if measure in ("quality", "scaling") and not out["datasets"]:
            raise ConfigError(f"{where}: give datasets")
    for axis in ("world_sizes", "batch_sizes"):
        if any(not isinstance(v, int) or isinstance(v, bool) or v < 1 for v in out[axis]):
            raise ConfigError(f"{where}: {axis} must be positive integers, got {out[axis]!r}")
    for axis in ("compile", "channels_last"):
        if any(not isinstance(v, bool) for v in out[axis]):
            raise ConfigError(f"{where}: {axis} must be true/false values, got {out[axis]!r}")
    for key in ("config", "settings"):
        if not isinstance(out.get(key, {}), dict):
            raise ConfigError(f"{where}: {key} must be a table")
    out["settings"] = _settings(measure, dict(out.get("settings", {})), where)
    target = out.get("target")
    if target is not None and (not isinstance(target, dict) or set(target) != {"metric", "value"}
                               or not isinstance(target["value"], (int, float))):
        raise ConfigError(f"{where}: target must be {{ metric = \"NAME\", value = NUMBER }}, got {target!r}")
    return out


# -- expansion -------------------------------------------------------------------------------


def _names(registry: Any, kind: str, items: list[str], exclude: Any, task: str | None) -> list[tuple[str, str | None]]:
    """``(name, error)`` for each architecture/dataset/strategy a group asks for."""
    from ..registry import LookupFailure

    table = registry.table(kind)
    out: list[tuple[str, str | None]] = []
    for item in items:
        if any(ch in item for ch in "*?["):
            found = table.select(item, exclude, task=task)
            if not found:
                out.append((item, f"no {kind[:-1]} matches {item!r}; see `bestiary list {kind}`"))
            for entry in found:
                bare_unique = len(table.select(entry.name)) == 1
                out.append((entry.name if bare_unique else entry.qualified_name, None))
            continue
        try:
            table.get(item)
            out.append((item, None))
        except LookupFailure as exc:
            out.append((item, str(exc)))
    return out


def _expand(suite: Suite, group: dict[str, Any], registry: Any) -> list[Cell]:
    config = {**suite.config, **group.get("config", {})}
    settings = {**MEASURES[suite.measure], **suite.settings, **group["settings"]}
    if suite.measure == "registry":
        return [Cell(suite.name, suite.measure, probe=p, settings=settings) for p in group["probes"]]
    archs = _names(registry, "architectures", group["architectures"], group.get("exclude"), group.get("task"))
    datasets = _names(registry, "datasets", group["datasets"], None, None) if group["datasets"] else [(None, None)]
    strategies = _names(registry, "strategies", group["strategies"], None, None)
    batch_sizes = group["batch_sizes"] or [config.get("batch_size")]
    cells = []
    for (arch, e1), (dataset, e2), (strategy, e3), world, precision, batch, comp, cl in itertools.product(
        archs, datasets, strategies, group["world_sizes"], group["precisions"], batch_sizes,
        group["compile"], group["channels_last"],
    ):
        error = e1 or e2 or e3
        cells.append(Cell(suite.name, suite.measure, arch, dataset, strategy or "single", world, precision, batch,
                          comp, cl, config=dict(config), settings=dict(settings), target=group.get("target"),
                          error=error))
    return cells
