"""Entries: frozen descriptions of things a plugin offers, with a factory that builds them lazily.

Registering an entry never imports what it builds: the factory is an import string
(``"package.module:attr"``) or a callable that does its heavy imports inside.
"""

from __future__ import annotations

import importlib
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from .direction import check_direction
from .errors import EntryLoadError, InvalidEntryError, singular
from .space import SearchSpace

NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_.\-]*$")
FACTORY_RE = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$")


@dataclass(frozen=True, slots=True)
class Provenance:
    """Where an entry came from.

    :param plugin: the plugin's name, which prefixes qualified names (``plugin:name``).
    :param distribution: the installed distribution that ships the plugin.
    :param version: that distribution's version.
    """

    plugin: str
    distribution: str
    version: str


@dataclass(frozen=True, slots=True)
class Entry:
    """One registered thing: an architecture, a dataset, a metric, a strategy, ...

    :param name: lower-snake name, unique within its plugin and kind (``resnet50``).
    :param kind: the table it lives in (``architectures``); set by the host on registration.
    :param factory: ``"package.module:attr"`` or a callable; called with ``defaults`` updated by
        the caller's keyword arguments.
    :param task: the task it serves (``image-classification``, ``forecasting``), or ``None`` when
        it serves any task.
    :param description: one line for listings.
    :param tags: free labels used to filter listings.
    :param defaults: keyword arguments passed to the factory unless the caller overrides them.
    :param search_space: hyperparameter search space for the tuner.
    :param metadata: any other static facts (parameter count, input size, ...), JSON values.
    :param provenance: which plugin and distribution registered it; set by the host.
    :param namespace: prefix of the qualified name when it is not the plugin's name (the vision
        plugin offers any timm model as ``timm:<name>``).
    """

    name: str
    kind: str
    factory: str | Callable[..., Any]
    task: str | None = None
    description: str = ""
    tags: tuple[str, ...] = ()
    defaults: Mapping[str, Any] = field(default_factory=dict)
    search_space: Mapping[str, Any] = field(default_factory=dict)
    metadata: Mapping[str, Any] = field(default_factory=dict)
    provenance: Provenance = Provenance("unknown", "unknown", "0")
    namespace: str | None = None

    def __post_init__(self) -> None:
        what = f"{singular(self.kind)} {self.name!r}"
        if not isinstance(self.name, str) or not NAME_RE.match(self.name):
            raise InvalidEntryError(
                f"invalid {singular(self.kind)} name {self.name!r}: names are lower-case letters, "
                "digits, '_', '-' and '.', starting with a letter or digit (for example 'resnet50')"
            )
        if isinstance(self.factory, str):
            if not FACTORY_RE.match(self.factory):
                raise InvalidEntryError(
                    f"{what}: factory {self.factory!r} is not an import string of the form "
                    "'package.module:attribute' and not a callable"
                )
        elif not callable(self.factory):
            raise InvalidEntryError(
                f"{what}: factory must be 'package.module:attribute' or a callable, "
                f"got {type(self.factory).__name__}"
            )
        if self.namespace is not None and (not isinstance(self.namespace, str) or not NAME_RE.match(self.namespace)):
            raise InvalidEntryError(f"{what}: namespace must be a lower-case name or None, got {self.namespace!r}")
        if self.task is not None and (not isinstance(self.task, str) or not NAME_RE.match(self.task)):
            raise InvalidEntryError(f"{what}: task must be a lower-case name or None, got {self.task!r}")
        if not isinstance(self.description, str):
            raise InvalidEntryError(f"{what}: description must be a string")
        tags = (self.tags,) if isinstance(self.tags, str) else self.tags
        try:
            tags = tuple(tags)
        except TypeError:
            raise InvalidEntryError(f"{what}: tags must be a sequence of strings") from None
        if not all(isinstance(t, str) and t for t in tags):
            raise InvalidEntryError(f"{what}: tags must be non-empty strings, got {tags!r}")
        object.__setattr__(self, "tags", tags)
        for attr in ("defaults", "search_space", "metadata"):
            value = getattr(self, attr)
            if value is None:
                value = {}
            if not isinstance(value, Mapping) or not all(isinstance(k, str) for k in value):
                raise InvalidEntryError(f"{what}: {attr} must be a mapping with string keys")
            try:
                json.dumps(dict(value), allow_nan=True)
            except (TypeError, ValueError) as exc:
                raise InvalidEntryError(f"{what}: {attr} must hold JSON values only ({exc})") from None
            object.__setattr__(self, attr, MappingProxyType(dict(value)))

        SearchSpace.parse(self.search_space, where=f"{what}: search_space", error=InvalidEntryError)
        if self.kind == "metrics":
            check_direction(what, self.metadata)

    def __hash__(self) -> int:
        return hash((self.kind, self.provenance.plugin, self.name))

    @property
    def qualified_name(self) -> str:
        """``plugin:name`` (or ``namespace:name``), unique across all plugins."""
        return f"{self.namespace or self.provenance.plugin}:{self.name}"

    @property
    def factory_path(self) -> str:
        """The factory as an import string, also for callables."""
        if isinstance(self.factory, str):
            return self.factory
        module = getattr(self.factory, "__module__", "?")
        return f"{module}:{getattr(self.factory, '__qualname__', repr(self.factory))}"

    def load(self) -> Callable[..., Any]:
        """Resolve the factory, importing its module.

        :raises EntryLoadError: (an ``ImportError``) naming the entry, its plugin and distribution when the import fails.
        """
        if callable(self.factory):
            return self.factory
        module_name, _, attr = self.factory.partition(":")
        try:
            obj: Any = importlib.import_module(module_name)
            for part in attr.split("."):
                obj = getattr(obj, part)
        except Exception as exc:
            p = self.provenance
            raise EntryLoadError(
                f"{singular(self.kind)} {self.qualified_name!r} cannot be built: its factory "
                f"{self.factory!r} failed to load ({type(exc).__name__}: {exc}). It comes from "
                f"{p.distribution} {p.version}; reinstall or upgrade it "
                f"(`bestiary plugins install -U {p.distribution}`)."
            ) from exc
        return obj

    def build(self, **kwargs: Any) -> Any:
        """Call the factory with :attr:`defaults` updated by ``kwargs``."""
        return self.load()(**{**self.defaults, **kwargs})

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready description of the entry."""
        return {
            "name": self.name,
            "qualified_name": self.qualified_name,
            "kind": self.kind,
            "task": self.task,
            "plugin": self.provenance.plugin,
            "namespace": self.namespace,
            "distribution": self.provenance.distribution,
            "version": self.provenance.version,
            "description": self.description,
            "tags": list(self.tags),
            "factory": self.factory_path,
            "defaults": dict(self.defaults),
            "search_space": dict(self.search_space),
            "metadata": dict(self.metadata),
        }

