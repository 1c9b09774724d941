"""The plugin host: isolation of failing plugins, strict mode, blocking, autoload, lazy loading."""

from __future__ import annotations

import importlib
import importlib.metadata
import sys
import threading
import types

import pytest
from bestiary_testing import IMPORT_ERROR, by_name, make_host

import bestiary
from bestiary import hookimpl

VERSION = bestiary.__version__

#: (fixture plugin, its exact error, the exception type its traceback shows, entries it tried to
#: register before failing as (kind, name)).
FAILURES = [
    pytest.param("import_error", IMPORT_ERROR, "ModuleNotFoundError", [], id="import-fails"),
    pytest.param(
        "unknown_hook",
        "implements unknown hook 'register_architecture' (did you mean 'register_architectures'?); "
        "see `bestiary.hookspecs` for the hooks, or declare it in an add_hookspecs hook of a plugin that "
        "loads earlier",
        "PluginValidationError",
        [("datasets", "unknown_hook_data")],
        id="unknown-hook",
    ),
    pytest.param(
        "wrong_args",
        "hook 'register_architectures' asks for argument(s) 'registry' that the hookspec does not "
        "provide (it provides: register)",
        "asks for argument(s) 'registry'",
        [("datasets", "wrong_args_data")],
        id="wrong-arguments",
    ),
    pytest.param(
        "raises",
        "register_datasets raised RuntimeError: dataset index is corrupt",
        "RuntimeError",
        [("architectures", "raises_net"), ("datasets", "raises_data")],
        id="hook-raises",
    ),
    pytest.param(
        "invalid_name",
        "register_architectures registered an invalid entry: invalid architecture name 'Bad Name': "
        "names are lower-case letters, digits, '_', '-' and '.', starting with a letter or digit "
        "(for example 'resnet50')",
        "InvalidEntryError",
        [("architectures", "invalid_name_ok")],
        id="invalid-name",
    ),
    pytest.param(
        "invalid_factory",
        "register_metrics registered an invalid entry: metric 'invalid_factory_metric': factory "
        "'bestiary_fixtures/factories.py' is not an import string of the form "
        "'package.module:attribute' and not a callable",
        "InvalidEntryError",
        [("metrics", "invalid_factory_ok")],
        id="invalid-factory-string",
    ),
    pytest.param(
        "caught_invalid",
        "register_architectures registered an invalid entry: architecture 'caught_bad': factory "
        "must be 'package.module:attribute' or a callable, got int",
        "InvalidEntryError",
        [("architectures", "caught_ok")],
        id="invalid-factory-caught-by-plugin",
    ),
    pytest.param(
        "invalid_tags",
        "register_strategies registered an invalid entry: strategy 'invalid_tags_strategy': tags must "
        "be non-empty strings, got ('fast', 3)",
        "InvalidEntryError",
        [],
        id="invalid-tags",
    ),
    pytest.param(
        "invalid_task",
        "register_datasets registered an invalid entry: dataset 'invalid_task_data': task must be a "
        "lower-case name or None, got 'Image Classification'",
        "InvalidEntryError",
        [],
        id="invalid-task",
    ),
    pytest.param(
        "duplicate_entry",
        "register_architectures registered an invalid entry: architecture 'duplicate_entry:twice' is "
        "registered twice by plugin 'duplicate_entry'",
        "DuplicateEntryError",
        [("architectures", "twice")],
        id="duplicate-entry",
    ),
]


def names(host: bestiary.PluginHost, kind: str, plugin: str | None = None) -> list[str]:
    return [e.qualified_name for e in host.registry.table(kind).select(plugin=plugin)]


# -- one failing plugin among healthy ones ----------------------------------------------------


@pytest.mark.parametrize(("plugin", "error", "exc_type", "attempted"), FAILURES)
def test_failing_plugin_is_skipped_whole_and_recorded(plugin, error, exc_type, attempted, caplog):
    host = make_host("alpha", plugin, "beta")

    records = by_name(host.plugins)
    assert list(records) == ["alpha", plugin, "beta"]
    info = records[plugin]
    assert info.status == "failed"
    assert info.error == error
    assert info.status_text == f"failed: {error}"
    assert (info.module, info.source) == (f"bestiary_fixtures.{plugin}", "builtin")
    assert (info.distribution, info.version) == ("bestiary", VERSION)
    assert info.traceback and exc_type in info.traceback
    assert (info.entries, info.hooks) == ({}, ())
    assert info.to_dict()["error"] == error

    # None of its entries landed, not even those registered before the failure.
    for kind in host.registry.kinds:
        assert names(host, kind, plugin) == []
    for kind, name in attempted:
        assert name not in host.registry.table(kind)
    assert host.pm.get_plugin(plugin) is None

    # The plugins around it work.
    assert records["alpha"].status == records["beta"].status == "ok"
    assert host.registry.table("architectures").get("alpha_net").provenance.plugin == "alpha"
    assert host.registry.table("architectures").get("beta_net").provenance.plugin == "beta"
    assert names(host, "architectures", "beta") == ["beta:beta_net", "beta:shared"]

    # The failure is logged once, pointing at `bestiary plugins`.
    warnings = [r.getMessage() for r in caplog.records if r.name == "bestiary"]
    assert warnings == [
        f"bestiary: plugin {plugin!r} (bestiary {VERSION}) skipped: {error} (see `bestiary plugins`)"
    ]


def test_healthy_plugin_record():
    host = make_host("alpha", "beta")
    alpha = by_name(host.plugins)["alpha"]
    assert alpha.to_dict() == {
        "name": "alpha",
        "module": "bestiary_fixtures.alpha",
        "distribution": "bestiary",
        "version": VERSION,
        "source": "builtin",
        "status": "ok",
        "error": None,
        "traceback": None,
        "hooks": ["register_architectures", "register_datasets", "register_metrics", "register_strategies"],
        "entries": {"architectures": 4, "datasets": 1, "metrics": 1, "strategies": 1},
    }
    assert alpha.status_text == "ok"
    assert alpha.describe() == f"plugin 'alpha' ({'bestiary'} {VERSION})"
    assert by_name(host.plugins)["beta"].entries == {"architectures": 2, "datasets": 1}


def test_entries_carry_provenance():
    host = make_host("alpha")
    entry = host.registry.table("architectures").get("alpha_net")
    assert entry.provenance == bestiary.Provenance("alpha", "bestiary", VERSION)
    assert entry.qualified_name == "alpha:alpha_net"
    assert entry.kind == "architectures"


def test_import_failure_does_not_import_anything_else():
    host = make_host("import_error")
    assert by_name(host.plugins)["import_error"].status == "failed"
    assert "bestiary_fixtures.import_error" not in sys.modules
    assert all(len(table) == 0 for table in host.registry)


def test_hookimpl_on_a_class_instance_with_wrong_arguments():
    class Plugin:
        @hookimpl
        def register_metrics(self, register, extra):
            register("never", "bestiary_fixtures.factories:make_thing", metadata={"higher_is_better": True})

    host = make_host("alpha")
    info = host.add_plugin(Plugin(), name="classy")
    assert info.status == "failed"
    assert info.error == (
        "hook 'register_metrics' asks for argument(s) 'extra' that the hookspec does not provide "
        "(it provides: register)"
    )
    assert "classy" not in [p.name for p in host.plugins if p.status == "ok"]


# -- strict mode -------------------------------------------------------------------------------

STRICT_TAIL = (
    "Run `bestiary plugins --json` for tracebacks; fix or uninstall the plugin, block it with "
    "BESTIARY_DISABLE_PLUGINS=<name>, or unset BESTIARY_STRICT_PLUGINS / drop --strict-plugins to "
    "skip broken plugins."
)


def test_strict_mode_raises_with_every_failure():
    host = make_host("alpha", "import_error", "raises", strict=True)
    with pytest.raises(bestiary.PluginLoadError) as excinfo:
        host.registry  # noqa: B018
    assert str(excinfo.value) == (
        f"2 plugin(s) failed to load: plugin 'import_error' (bestiary {VERSION}): {IMPORT_ERROR}; "
        f"plugin 'raises' (bestiary {VERSION}): register_datasets raised RuntimeError: dataset index "
        f"is corrupt. {STRICT_TAIL}"
    )
    assert isinstance(excinfo.value, RuntimeError)
    # Every access raises again; `bestiary plugins` still shows what happened.
    with pytest.raises(bestiary.PluginLoadError):
        host.pm  # noqa: B018
    assert [p.status for p in host.plugins] == ["ok", "failed", "failed"]


def test_strict_mode_from_environment(monkeypatch):
    monkeypatch.setenv("BESTIARY_STRICT_PLUGINS", "1")
    bestiary.reset_host(make_host("alpha", "import_error"))
    with pytest.raises(bestiary.PluginLoadError) as excinfo:
        bestiary.list_entries()
    assert str(excinfo.value) == (
        f"1 plugin(s) failed to load: plugin 'import_error' (bestiary {VERSION}): {IMPORT_ERROR}. "
        f"{STRICT_TAIL}"
    )


@pytest.mark.parametrize("value", ["", "0", "no", "false"])
def test_strict_mode_off_in_environment(monkeypatch, value):
    monkeypatch.setenv("BESTIARY_STRICT_PLUGINS", value)
    host = make_host("alpha", "import_error")
    assert host.strict is False
    assert len(host.registry.table("architectures")) == 4


def test_strict_mode_passes_when_all_plugins_load():
    host = make_host("alpha", "beta", strict=True)
    assert len(host.registry.table("architectures")) == 6


# -- blocking and autoload ---------------------------------------------------------------------


def test_disable_plugins_from_environment(monkeypatch):
    monkeypatch.setenv("BESTIARY_DISABLE_PLUGINS", "import_error, beta")
    host = make_host("alpha", "import_error", "beta", strict=True)
    records = by_name(host.plugins)
    for name in ("import_error", "beta"):
        assert records[name].status == "blocked"
        assert (records[name].error, records[name].entries) == (None, {})
    assert "bestiary_fixtures.import_error" not in sys.modules
    assert "bestiary_fixtures.beta" not in sys.modules
    assert names(host, "architectures", "beta") == []
    # With beta blocked, the bare name is alpha's alone; strict mode has nothing to complain about.
    assert host.registry.table("architectures").get("shared").qualified_name == "alpha:shared"


def test_disable_plugins_argument():
    host = make_host("alpha", "beta", disabled=["alpha"])
    assert [p.status for p in host.plugins] == ["blocked", "ok"]
    assert host.pm.get_plugin("alpha") is None


def test_entry_point_plugins_are_loaded_with_their_distribution(in_site):
    in_site("bestiary-gamma", "2.5", {"gamma": "bestiary_fixtures.beta"})
    host = make_host("alpha", autoload=True)
    gamma = by_name(host.plugins)["gamma"]
    assert (gamma.status, gamma.source, gamma.module) == ("ok", "entrypoint", "bestiary_fixtures.beta")
    assert (gamma.distribution, gamma.version) == ("bestiary-gamma", "2.5")
    entry = host.registry.table("architectures").get("gamma:beta_net")
    assert entry.provenance == bestiary.Provenance("gamma", "bestiary-gamma", "2.5")


def test_failing_entry_point_plugin_records_its_distribution(in_site):
    in_site("bestiary-delta", "0.9", {"delta": "bestiary_fixtures.import_error"})
    host = make_host("alpha", autoload=True)
    delta = by_name(host.plugins)["delta"]
    assert (delta.status, delta.error) == ("failed", IMPORT_ERROR)
    assert (delta.distribution, delta.version, delta.source) == ("bestiary-delta", "0.9", "entrypoint")
    assert "ModuleNotFoundError" in delta.traceback


def test_disable_autoload_from_environment_loads_builtins_only(in_site, monkeypatch):
    in_site("bestiary-gamma", "2.5", {"gamma": "bestiary_fixtures.beta"})
    monkeypatch.setenv("BESTIARY_DISABLE_PLUGIN_AUTOLOAD", "1")
    host = bestiary.PluginHost(builtins=["bestiary_fixtures.alpha"])
    assert host.autoload is False
    assert [p.name for p in host.plugins] == ["alpha"]
    assert "bestiary_fixtures.beta" not in sys.modules


def test_entry_points_can_be_blocked_by_name(in_site, monkeypatch):
    in_site("bestiary-delta", "0.9", {"delta": "bestiary_fixtures.import_error"})
    monkeypatch.setenv("BESTIARY_DISABLE_PLUGINS", "delta")
    host = make_host("alpha", autoload=True)
    assert by_name(host.plugins)["delta"].status == "blocked"
    assert "bestiary_fixtures.import_error" not in sys.modules


def test_plugins_by_import_path_from_environment(in_site, monkeypatch):
    in_site("bestiary-gamma", "2.5", {"gamma": "bestiary_fixtures.counting"})
    monkeypatch.setenv("BESTIARY_PLUGINS", "beta=bestiary_fixtures.beta, import_error=bestiary_fixtures.import_error")
    host = make_host("alpha", autoload=True)
    ours = {"alpha", "beta", "import_error", "gamma"}
    assert [(p.name, p.source) for p in host.plugins if p.name in ours] == [
        ("alpha", "builtin"),
        ("beta", "env"),
        ("import_error", "env"),
        ("gamma", "entrypoint"),
    ]
    beta, broken = host.plugins[1:3]
    assert (beta.status, beta.distribution, beta.version) == ("ok", "local", "0")
    assert host.registry.table("architectures").get("beta:beta_net").provenance.distribution == "local"
    assert (broken.status, broken.error) == ("failed", IMPORT_ERROR)


def test_plugins_from_environment_are_named_after_their_package(monkeypatch):
    monkeypatch.setenv("BESTIARY_PLUGINS", "bestiary_fixtures.beta")
    host = make_host()
    assert [(p.name, p.module) for p in host.plugins] == [("bestiary_fixtures", "bestiary_fixtures.beta")]
    assert host.registry.table("architectures").get("beta_net").qualified_name == "bestiary_fixtures:beta_net"


# -- names -------------------------------------------------------------------------------------


def test_duplicate_builtin_plugin_name_is_refused_before_import():
    host = make_host("alpha", "more.alpha")
    first, second = host.plugins
    assert (first.name, first.status) == ("alpha", "ok")
    assert (second.name, second.module, second.status) == ("alpha", "bestiary_fixtures.more.alpha", "failed")
    assert second.error == f"plugin name 'alpha' is already taken by bestiary {VERSION}"
    assert "bestiary_fixtures.more.alpha" not in sys.modules
    assert "impostor_net" not in host.registry.table("architectures")


def test_duplicate_entry_point_names_across_distributions(in_site):
    in_site("bestiary-dup-a", "1.0", {"dup": "bestiary_fixtures.alpha"})
    in_site("bestiary-dup-b", "2.0", {"dup": "bestiary_fixtures.beta"})
    host = make_host(autoload=True)
    records = [p for p in host.plugins if p.name == "dup"]
    assert [(p.distribution, p.status) for p in records] == [
        ("bestiary-dup-a", "ok"),
        ("bestiary-dup-b", "failed"),
    ]
    assert records[1].error == "plugin name 'dup' is already taken by bestiary-dup-a 1.0"
    assert names(host, "architectures", "dup") == [
        "dup:alpha_net",
        "dup:alpha_net_large",
        "dup:broken_factory",
        "dup:shared",
    ]


def test_ambiguous_bare_name_across_distributions(in_site):
    in_site("bestiary-alpha", "1.0", {"alpha": "bestiary_fixtures.alpha"})
    in_site("bestiary-beta", "2.0.1", {"beta": "bestiary_fixtures.beta"})
    bestiary.reset_host(make_host(autoload=True))
    with pytest.raises(bestiary.AmbiguousEntryError) as excinfo:
        bestiary.get_entry("architectures", "shared")
    assert str(excinfo.value) == (
        "architecture name 'shared' is ambiguous: it is registered by alpha:shared (from "
        "bestiary-alpha 1.0); beta:shared (from bestiary-beta 2.0.1). Use one of the qualified names."
    )
    assert isinstance(excinfo.value, KeyError)
    assert bestiary.get_entry("architecture", "beta:shared").provenance.distribution == "bestiary-beta"


# -- lazy, once --------------------------------------------------------------------------------


def test_loading_is_lazy_and_happens_once(monkeypatch):
    scans = []
    real_entry_points = importlib.metadata.entry_points
    monkeypatch.setattr(
        importlib.metadata, "entry_points", lambda **kw: scans.append(kw) or real_entry_points(**kw)
    )

    host = make_host("counting", autoload=True)
    assert "bestiary_fixtures.counting" not in sys.modules
    assert scans == []

    assert host.registry.table("architectures").get("counted").qualified_name == "counting:counted"
    host.registry  # noqa: B018
    host.pm  # noqa: B018
    host.plugins  # noqa: B018
    host.load()

    counters = importlib.import_module("bestiary_fixtures.counters")
    assert counters.COUNTS == {"imported": 1, "registered": 1}
    assert scans == [{"group": "bestiary"}]


def test_process_wide_host_is_lazy():
    bestiary.reset_host(make_host("counting"))
    assert "bestiary_fixtures.counting" not in sys.modules
    assert [e.qualified_name for e in bestiary.list_entries()] == ["counting:counted"]
    assert bestiary.list_entries("architectures", "count*")[0].name == "counted"
    counters = importlib.import_module("bestiary_fixtures.counters")
    assert counters.COUNTS == {"imported": 1, "registered": 1}


def test_concurrent_first_access_waits_for_loading():
    host = make_host("gate")
    gate = importlib.import_module("bestiary_fixtures.gate")
    seen: dict[str, list[str]] = {}

    def first() -> None:
        seen["first"] = [e.name for e in host.registry.table("architectures")]

    def second() -> None:
        seen["second"] = [e.name for e in host.registry.table("architectures")]

    loader = threading.Thread(target=first)
    loader.start()
    assert gate.entered.wait(timeout=10)
    other = threading.Thread(target=second)
    other.start()
    other.join(timeout=0.2)  # it must wait for the loader, not see a half-filled registry
    gate.release.set()
    loader.join(timeout=10)
    other.join(timeout=10)
    assert seen == {"first": ["gated"], "second": ["gated"]}


# -- plugins added at run time -----------------------------------------------------------------


class RuntimePlugin:
    @hookimpl
    def register_architectures(self, register):
        register("runtime_net", "bestiary_fixtures.factories:make_thing", tags=["runtime"])

    @hookimpl
    def register_metrics(self, register):
        register("runtime_metric", lambda: "metric", metadata={"higher_is_better": True})


def test_add_plugin_at_runtime():
    host = make_host("counting")
    info = host.add_plugin(RuntimePlugin(), name="runtime")
    # Adding loads the other plugins first, like any access.
    assert "bestiary_fixtures.counting" in sys.modules
    assert (info.name, info.source, info.status) == ("runtime", "runtime", "ok")
    assert (info.distribution, info.version) == ("local", "0")
    assert info.entries == {"architectures": 1, "metrics": 1}
    assert info.hooks == ("register_architectures", "register_metrics")
    assert host.plugins[-1] is info
    entry = host.registry.table("architectures").get("runtime:runtime_net")
    assert entry.tags == ("runtime",)
    assert host.registry.table("metrics").get("runtime_metric").build() == "metric"


def test_add_plugin_module_defaults_to_module_name():
    host = make_host()
    module = importlib.import_module("bestiary_fixtures.beta")
    info = host.add_plugin(module)
    assert (info.name, info.module, info.status) == ("beta", "bestiary_fixtures.beta", "ok")
    assert host.registry.table("architectures").get("beta_net").provenance.plugin == "beta"


def test_add_failing_plugin_at_runtime_is_isolated():
    host = make_host("alpha")
    plugin = types.SimpleNamespace()

    @hookimpl
    def register_datasets(register):
        register("runtime_data", "bestiary_fixtures.factories:make_thing")
        raise ValueError("no data")

    plugin.register_datasets = register_datasets
    info = host.add_plugin(plugin, name="flaky")
    assert (info.status, info.error) == ("failed", "register_datasets raised ValueError: no data")
    assert "runtime_data" not in host.registry.table("datasets")
    assert host.pm.get_plugin("flaky") is None


def test_add_plugin_with_a_taken_name():
    host = make_host("alpha")
    info = host.add_plugin(RuntimePlugin(), name="alpha")
    assert (info.status, info.error) == (
        "failed",
        f"plugin name 'alpha' is already taken by bestiary {VERSION}",
    )
    assert "runtime_net" not in host.registry.table("architectures")


def test_adding_a_registered_plugin_again_keeps_the_first_registration():
    host = make_host("alpha")
    alpha = importlib.import_module("bestiary_fixtures.alpha")
    info = host.add_plugin(alpha, name="alpha_again")
    assert info.status == "failed"
    assert info.error == "bestiary_fixtures.alpha is already loaded as plugin 'alpha'"
    # The failure must not unregister the plugin that was there first.
    assert host.pm.get_plugin("alpha") is alpha
    assert len(host.pm.hook.register_architectures.get_hookimpls()) == 1
    assert by_name(host.plugins)["alpha"].status == "ok"
