"""The plugin host: loads built-in and third-party plugins once, lazily, each in isolation.

Built-ins (:data:`DEFAULT_PLUGINS`) and the entry-point group ``bestiary`` go through one code
path, :meth:`PluginHost._load_one`. A plugin that fails to import, implements a hook that matches
no specification, declares arguments its hook does not provide, raises inside a registration hook
or registers an invalid entry is skipped as a whole (none of its entries land) and recorded with
its distribution, version and the original traceback. Strict mode turns any failure into an error.
"""

from __future__ import annotations

import difflib
import inspect
import logging
import os
import threading
import traceback
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

import pluggy

from . import hookspecs
from ._version import __version__
from .registry import Entry, InvalidEntryError, Provenance, Registry, Table

log = logging.getLogger("bestiary")

#: Import paths of the plugins that ship with bestiary, loaded before third-party ones.
DEFAULT_PLUGINS: tuple[str, ...] = (
    "bestiary.plugins.tasks",
    "bestiary.plugins.single",
    "bestiary.plugins.tensorboard",
    "bestiary.plugins.vision",
    "bestiary.plugins.parallel",
    "bestiary.plugins.debugger",
    "bestiary.plugins.timeseries",
    "bestiary.plugins.launchers",
    "bestiary.plugins.launchers.sagemaker",
    "bestiary.benchmarks.suites",
)

ENTRY_POINT_GROUP = "bestiary"
ENV_STRICT = "BESTIARY_STRICT_PLUGINS"
ENV_DISABLE = "BESTIARY_DISABLE_PLUGINS"
ENV_NO_AUTOLOAD = "BESTIARY_DISABLE_PLUGIN_AUTOLOAD"
ENV_PLUGINS = "BESTIARY_PLUGINS"


class Register(Protocol):
    """The callback a registration hook receives."""

    def __call__(
        self,
        name: str,
        factory: str | Callable[..., Any],
        *,
        task: str | None = None,
        description: str = "",
        tags: Iterable[str] = (),
        defaults: dict[str, Any] | None = None,
        search_space: dict[str, Any] | None = None,
        metadata: dict[str, Any] | None = None,
        namespace: str | None = None,
    ) -> None: ...


class PluginLoadError(RuntimeError):
    """Raised in strict mode when any plugin failed to load."""


@dataclass
class PluginInfo:
    """What the host knows about one plugin."""

    name: str
    module: str
    distribution: str
    version: str
    source: str  # "builtin", "env" (BESTIARY_PLUGINS), "entrypoint" or "runtime"
    status: str = "ok"  # "ok", "failed" or "blocked"
    error: str | None = None
    traceback: str | None = None
    hooks: tuple[str, ...] = ()
    entries: dict[str, int] = field(default_factory=dict)

    @property
    def status_text(self) -> str:
        return f"failed: {self.error}" if self.status == "failed" else self.status

    def describe(self) -> str:
        return f"plugin {self.name!r} ({self.distribution} {self.version})"

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "module": self.module,
            "distribution": self.distribution,
            "version": self.version,
            "source": self.source,
            "status": self.status,
            "error": self.error,
            "traceback": self.traceback,
            "hooks": list(self.hooks),
            "entries": dict(self.entries),
        }


class _PluginFailure(Exception):
    """Internal: why one plugin was skipped."""

    def __init__(self, message: str, cause: BaseException | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.cause = cause


def registration_kinds(pm: pluggy.PluginManager | None = None) -> dict[str, str]:
    """Map each kind to its registration hook: bestiary's own in the order the hookspecs declare
    them, then those that plugins added (hook ``add_hookspecs``) to ``pm``, in the order added."""
    kinds = {}
    for name, obj in vars(hookspecs).items():
        if name.startswith(hookspecs.REGISTER_PREFIX) and hasattr(obj, f"{hookspecs.PROJECT}_spec"):
            kinds[name[len(hookspecs.REGISTER_PREFIX) :]] = name
    for name in _spec_names(pm) if pm is not None else ():
        if name.startswith(hookspecs.REGISTER_PREFIX):
            kinds.setdefault(name[len(hookspecs.REGISTER_PREFIX) :], name)
    return kinds


def _spec_names(pm: pluggy.PluginManager) -> list[str]:
    """Names of the hooks that have a specification in ``pm``, in the order they were added."""
    return [name for name, caller in vars(pm.hook).items()
            if isinstance(caller, pluggy.HookCaller) and caller.has_spec()]


def _spec_function(pm: pluggy.PluginManager, name: str) -> Callable[..., Any] | None:
    caller = getattr(pm.hook, name, None)
    spec = getattr(caller, "spec", None)
    return spec.function if spec is not None else None


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in {"1", "true", "yes", "on"}


class PluginHost:
    """Owns the pluggy manager and the registry that plugins fill.

    :param builtins: import paths of built-in plugins (default :data:`DEFAULT_PLUGINS`).
    :param autoload: load third-party entry points (default: unless ``BESTIARY_DISABLE_PLUGIN_AUTOLOAD``).
    :param disabled: plugin names to block (default: ``BESTIARY_DISABLE_PLUGINS``, comma separated).
    :param strict: raise :class:`PluginLoadError` when any plugin fails (default:
        ``BESTIARY_STRICT_PLUGINS``).

    ``BESTIARY_PLUGINS=pkg.mod,name=other.mod`` loads plugin modules by import path after the
    built-ins, without packaging them (handy for scripts, tests and worker processes); a plugin is
    named after its top-level package unless ``name=`` says otherwise.
    """

    def __init__(
        self,
        builtins: Iterable[str] | None = None,
        *,
        autoload: bool | None = None,
        disabled: Iterable[str] | None = None,
        strict: bool | None = None,
    ) -> None:
        self.builtins = tuple(DEFAULT_PLUGINS if builtins is None else builtins)
        self.autoload = not _env_flag(ENV_NO_AUTOLOAD) if autoload is None else autoload
        if disabled is None:
            disabled = os.environ.get(ENV_DISABLE, "").split(",")
        self.disabled = {d.strip() for d in disabled if d.strip()}
        self.strict = _env_flag(ENV_STRICT) if strict is None else strict
        self.extra = tuple(p.strip() for p in os.environ.get(ENV_PLUGINS, "").split(",") if p.strip())
        self.kinds = registration_kinds()
        self._pm: pluggy.PluginManager | None = None
        self._loaded = False  # set once every plugin went through _load_one
        self._registry = Registry(self.kinds, self._resolve, self._discover)
        self._records: dict[str, PluginInfo] = {}
        self._options: list[Any] | None = None  # OptionSpec, collected on first use
        self._lock = threading.RLock()

    # -- access -------------------------------------------------------------------------------

    @property
    def pm(self) -> pluggy.PluginManager:
        """The pluggy manager, with every plugin loaded."""
        self.load()
        assert self._pm is not None
        return self._pm

    @property
    def registry(self) -> Registry:
        """The registry, with every plugin loaded."""
        self.load()
        return self._registry

    @property
    def plugins(self) -> list[PluginInfo]:
        """Every plugin seen, loaded or not, in load order."""
        self.load(strict=False)
        return list(self._records.values())

    def load(self, strict: bool | None = None) -> None:
        """Load all plugins (once); in strict mode, raise if any failed."""
        if not self._loaded:
            with self._lock:
                # _pm is set before plugins load: a plugin looking things up while it loads (same
                # thread) sees what is there so far; other threads wait on the lock for _loaded.
                if self._pm is None:
                    pm = pluggy.PluginManager(hookspecs.PROJECT)
                    pm.add_hookspecs(hookspecs)
                    # historic: every plugin registered later gets the call as it registers
                    pm.hook.add_hookspecs.call_historic(kwargs={"pluginmanager": pm})
                    self._pm = pm
                    try:
                        for path in self.builtins:
                            self._load_one(path.rsplit(".", 1)[-1], path, _importer(path), "builtin")
                        for item in self.extra:
                            name, _, path = item.rpartition("=")
                            self._load_one(name or path.split(".", 1)[0], path, _importer(path), "env",
                                           distribution="local", version="0")
                        if self.autoload:
                            self._load_entry_points()
                    finally:
                        self._loaded = True
        if self.strict if strict is None else strict:
            failed = [p for p in self._records.values() if p.status == "failed"]
            if failed:
                lines = "; ".join(f"{p.describe()}: {p.error}" for p in failed)
                raise PluginLoadError(
                    f"{len(failed)} plugin(s) failed to load: {lines}. Run `bestiary plugins --json` "
                    f"for tracebacks; fix or uninstall the plugin, block it with {ENV_DISABLE}=<name>, "
                    f"or unset {ENV_STRICT} / drop --strict-plugins to skip broken plugins."
                )

    def add_plugin(self, plugin: object, name: str | None = None) -> PluginInfo:
        """Register a plugin object at run time (for scripts and tests), like any other plugin."""
        self.load(strict=False)
        name = name or getattr(plugin, "__name__", "").rsplit(".", 1)[-1] or type(plugin).__name__.lower()
        module = getattr(plugin, "__name__", type(plugin).__module__)
        return self._load_one(name, module, lambda: plugin, "runtime", distribution="local", version="0")

    # -- loading ------------------------------------------------------------------------------

    def _load_entry_points(self) -> None:
        # importlib.metadata scans every installed distribution: only paid when autoloading.
        from importlib.metadata import entry_points

        seen = set()
        for ep in sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda e: (e.name, e.value)):
            if (ep.name, ep.value) in seen:  # one distribution visible twice on sys.path
                continue
            seen.add((ep.name, ep.value))
            dist = ep.dist
            self._load_one(
                ep.name,
                ep.value,
                ep.load,
                "entrypoint",
                distribution=dist.metadata["Name"] if dist else "unknown",
                version=dist.version if dist else "unknown",
            )

    def _load_one(
        self,
        name: str,
        module: str,
        loader: Callable[[], object],
        source: str,
        *,
        distribution: str = "bestiary",
        version: str = __version__,
    ) -> PluginInfo:
        assert self._pm is not None
        info = PluginInfo(name, module, distribution, version, source)
        if name in self._records:
            other = self._records[name]
            info.status, info.error = "failed", (
                f"plugin name {name!r} is already taken by {other.distribution} {other.version}"
            )
            key, n = f"{name} ({distribution})", 2
            while key in self._records:
                key, n = f"{name} ({distribution} #{n})", n + 1
            self._records[key] = info
            log.warning("bestiary: %s skipped: %s", info.describe(), info.error)
            return info
        self._records[name] = info
        if name in self.disabled:
            info.status = "blocked"
            self._pm.set_blocked(name)
            return info
        plugin: object = None
        try:
            try:
                plugin = loader()
            except (Exception, SystemExit) as exc:
                raise _PluginFailure(f"import failed: {type(exc).__name__}: {exc}", exc) from exc
            if self._pm.is_registered(plugin):
                holder = self._pm.get_name(plugin)
                raise _PluginFailure(f"{module} is already loaded as plugin {holder!r}")
            self._check_signatures(plugin)
            try:
                self._pm.register(plugin, name)  # runs the plugin's add_hookspecs (historic)
            except (pluggy.PluginValidationError, ValueError) as exc:
                raise _PluginFailure(" ".join(str(exc).split()), exc) from exc
            except Exception as exc:
                raise _PluginFailure(f"add_hookspecs raised {type(exc).__name__}: {exc}", exc) from exc
            self._check_signatures(plugin)  # again: its own specs are known now
            self._check_pending(plugin)
            self._add_kinds()
            staged = self._run_registration(plugin)
        except _PluginFailure as failure:
            # By name: a plugin object registered earlier under another name must stay registered.
            if plugin is not None and self._pm.get_plugin(name) is plugin:
                self._pm.unregister(name=name)
            info.status, info.error = "failed", failure.message
            cause = failure.cause or failure
            info.traceback = "".join(traceback.format_exception(cause))
            log.warning("bestiary: %s skipped: %s (see `bestiary plugins`)", info.describe(), info.error)
            return info
        for table in staged.values():
            for entry in table:
                self._registry.add(entry)
        info.hooks = tuple(sorted(h.name for h in self._pm.get_hookcallers(plugin) or ()))
        info.entries = {kind: len(table) for kind, table in staged.items() if len(table)}
        return info

    def _add_kinds(self) -> None:
        """Give each ``register_<kind>`` spec that plugins added a registry table."""
        assert self._pm is not None
        for kind, hook_name in registration_kinds(self._pm).items():
            if kind not in self.kinds:
                self.kinds[kind] = hook_name
                self._registry.add_kind(kind)

    def options(self) -> list[Any]:
        """Every run option the loaded plugins declare (hook ``add_options``), in load order.

        A plugin whose declaration is invalid is named in a warning and its options are left out.
        """
        from .options import OptionSpec, make_add

        self.load(strict=False)
        assert self._pm is not None
        if self._options is None:
            out: list[OptionSpec] = []
            for impl in reversed(self._pm.hook.add_options.get_hookimpls()):  # load order
                name = self._pm.get_name(impl.plugin) or "?"
                mine: list[OptionSpec] = []
                problems: list[str] = []
                try:
                    impl.function(add=make_add(name, mine, problems))
                except Exception as exc:  # noqa: BLE001  # one plugin must not take the CLI down
                    problems.append(f"add_options raised {type(exc).__name__}: {exc}")
                taken = {(o.table, o.name) for o in out}
                problems += [f"option {o.table}.{o.name} is already declared" for o in mine
                             if (o.table, o.name) in taken]
                if problems:
                    log.warning("bestiary: options of plugin %r left out: %s", name, "; ".join(problems))
                    continue
                out.extend(mine)
            self._options = out
        return list(self._options)

    def _on_demand(self, hook_name: str, kind: str, **kwargs: Any) -> list[Entry]:
        """Entries that plugins offer through ``resolve_entry``/``discover_entries``.

        A plugin that raises here is named in the error, with its distribution and version.
        """
        self.load(strict=False)
        assert self._pm is not None
        found: list[Entry] = []
        for impl in getattr(self._pm.hook, hook_name).get_hookimpls():
            provenance = _provenance_of(self, impl.plugin)
            table = Table(kind)
            problems: list[InvalidEntryError] = []
            register = _make_register(kind, provenance, table, problems)
            args = {**kwargs, "kind": kind, "register": register}
            try:
                impl.function(**{a: args[a] for a in impl.argnames})
            except Exception as exc:
                raise RuntimeError(
                    f"plugin {provenance.plugin!r} ({provenance.distribution} {provenance.version}) failed in "
                    f"{hook_name}: {type(exc).__name__}: {exc}"
                ) from exc
            found.extend(table)
        return found

    def _resolve(self, kind: str, namespace: str, name: str) -> list[Entry]:
        return self._on_demand("resolve_entry", kind, namespace=namespace, name=name)

    def _discover(self, kind: str) -> list[Entry]:
        return self._on_demand("discover_entries", kind)

    def _check_signatures(self, plugin: object) -> None:
        """Refuse hookimpls asking for arguments their hookspec does not provide."""
        for attr in dir(plugin):
            func = getattr(plugin, attr, None)
            opts = getattr(func, f"{hookspecs.PROJECT}_impl", None)
            spec = _spec_function(self._pm, attr) if self._pm is not None else getattr(hookspecs, attr, None)
            if opts is None or spec is None or not callable(func):
                continue
            offered = list(inspect.signature(spec).parameters)
            wanted = [
                p.name
                for p in inspect.signature(func).parameters.values()
                if p.default is p.empty and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
            ]
            extra = [a for a in wanted if a not in offered]
            if extra:
                raise _PluginFailure(
                    f"hook {attr!r} asks for argument(s) {', '.join(map(repr, extra))} that the "
                    f"hookspec does not provide (it provides: {', '.join(offered)})"
                )

    def _check_pending(self, plugin: object) -> None:
        assert self._pm is not None
        try:
            self._pm.check_pending()
        except pluggy.PluginValidationError as exc:
            unknown = [h.name for h in self._pm.get_hookcallers(plugin) or () if not h.has_spec()]
            if not unknown:
                raise _PluginFailure(" ".join(str(exc).split()), exc) from exc
            known = _spec_names(self._pm)
            parts = []
            for hook in unknown:
                close = difflib.get_close_matches(hook, known, n=1)
                parts.append(f"{hook!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
            raise _PluginFailure(
                f"implements unknown hook {', '.join(parts)}; see `bestiary.hookspecs` for the hooks, or declare "
                "it in an add_hookspecs hook of a plugin that loads earlier"
            ) from exc

    def _run_registration(self, plugin: object) -> dict[str, Table]:
        """Call the plugin's registration hooks, staging entries so a failure lands none."""
        assert self._pm is not None
        name = self._pm.get_name(plugin)
        info = self._records[name]  # type: ignore[index]
        provenance = Provenance(info.name, info.distribution, info.version)
        staged: dict[str, Table] = {}
        for kind, hook_name in self.kinds.items():
            for impl in getattr(self._pm.hook, hook_name).get_hookimpls():
                if impl.plugin is not plugin:
                    continue
                table = staged.setdefault(kind, Table(kind))
                problems: list[InvalidEntryError] = []
                register = _make_register(kind, provenance, table, problems)
                try:
                    impl.function(**dict.fromkeys(impl.argnames, register))
                except Exception as exc:  # one plugin must not take the CLI down
                    if not problems or exc is not problems[0]:
                        raise _PluginFailure(f"{hook_name} raised {type(exc).__name__}: {exc}", exc) from exc
                if problems:
                    raise _PluginFailure(f"{hook_name} registered an invalid entry: {problems[0]}", problems[0])
        return staged


def _provenance_of(host: PluginHost, plugin: object) -> Provenance:
    assert host._pm is not None
    info = host._records[host._pm.get_name(plugin)]  # type: ignore[index]
    return Provenance(info.name, info.distribution, info.version)


def _importer(path: str) -> Callable[[], object]:
    def load() -> object:
        import importlib

        return importlib.import_module(path)

    return load


def _make_register(kind: str, provenance: Provenance, table: Table, problems: list[InvalidEntryError]) -> Register:
    def register(
        name: str,
        factory: str | Callable[..., Any],
        *,
        task: str | None = None,
        description: str = "",
        tags: Iterable[str] = (),
        defaults: dict[str, Any] | None = None,
        search_space: dict[str, Any] | None = None,
        metadata: dict[str, Any] | None = None,
        namespace: str | None = None,
    ) -> None:
        try:
            table.add(
                Entry(
                    name=name,
                    kind=kind,
                    factory=factory,
                    task=task,
                    description=description,
                    tags=tags,  # type: ignore[arg-type]
                    defaults=defaults or {},
                    search_space=search_space or {},
                    metadata=metadata or {},
                    provenance=provenance,
                    namespace=namespace,
                )
            )
        except InvalidEntryError as exc:
            # Recorded even if the plugin catches it: an invalid entry always fails the plugin.
            problems.append(exc)
            raise

    return register


_host: PluginHost | None = None
_host_lock = threading.Lock()


def get_host() -> PluginHost:
    """The process-wide plugin host, created on first use from the environment."""
    global _host
    if _host is None:
        with _host_lock:
            if _host is None:
                _host = PluginHost()
    return _host


def reset_host(host: PluginHost | None = None) -> PluginHost:
    """Replace the process-wide host (for tests, or after changing the environment)."""
    global _host
    with _host_lock:
        _host = host or PluginHost()
    return _host
