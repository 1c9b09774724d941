"""The command line: list, info, plugins (show, install, uninstall), exit codes and messages.

Most tests run the CLI in this process with click's runner over a host of fixture plugins; a few
run ``python -m bestiary`` in a fresh process to check what a user's shell sees.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from bestiary_testing import IMPORT_ERROR, by_name, write_dist
from click.testing import CliRunner, Result

import bestiary
from bestiary.cli import main

VERSION = bestiary.__version__
ENTRY_KEYS = {
    "name",
    "qualified_name",
    "kind",
    "task",
    "plugin",
    "distribution",
    "version",
    "description",
    "tags",
}
STRICT_TAIL = (
    "Run `bestiary plugins --json` for tracebacks; fix or uninstall the plugin, block it with "
    "BESTIARY_DISABLE_PLUGINS=<name>, or unset BESTIARY_STRICT_PLUGINS / drop --strict-plugins to "
    "skip broken plugins."
)


def make_runner() -> CliRunner:
    try:  # click < 8.2 mixes stderr into stdout unless told otherwise
        return CliRunner(mix_stderr=False)  # type: ignore[call-arg]
    except TypeError:
        return CliRunner()


def invoke(*args: str) -> Result:
    return make_runner().invoke(main, list(args), prog_name="bestiary")


def json_out(*args: str) -> list | dict:
    result = invoke(*args)
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)


@pytest.fixture
def zoo(use_host):
    """alpha and beta (``shared`` is ambiguous, ``beta_net`` is an architecture and a dataset)."""
    return use_host("alpha", "beta")


# -- bestiary list -----------------------------------------------------------------------------


def test_list_json_carries_provenance(zoo):
    entries = json_out("list", "--json")
    assert len(entries) == 10
    assert all(set(e) >= ENTRY_KEYS for e in entries)
    alpha_net = next(e for e in entries if e["qualified_name"] == "alpha:alpha_net")
    assert {k: alpha_net[k] for k in ENTRY_KEYS} == {
        "name": "alpha_net",
        "qualified_name": "alpha:alpha_net",
        "kind": "architectures",
        "task": "image-classification",
        "plugin": "alpha",
        "distribution": "bestiary",
        "version": VERSION,
        "description": "Alpha's network",
        "tags": ["vision", "small"],
    }
    assert alpha_net["defaults"] == {"depth": 2, "width": 8}
    # Kinds in hookspec order, names sorted within a kind.
    kinds = [e["kind"] for e in entries]
    assert kinds == sorted(kinds, key=zoo.registry.kinds.index)


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (
            ["architectures"],
            [
                "alpha:alpha_net",
                "alpha:alpha_net_large",
                "beta:beta_net",
                "alpha:broken_factory",
                "alpha:shared",
                "beta:shared",
            ],
        ),
        (["architecture", "alpha*"], ["alpha:alpha_net", "alpha:alpha_net_large"]),
        (["architectures", "alpha*", "-x", "*large"], ["alpha:alpha_net"]),
        (["architectures", "beta_*", "shared"], ["beta:beta_net", "alpha:shared", "beta:shared"]),
        (["architectures", "beta:*"], ["beta:beta_net", "beta:shared"]),
        (["architectures", "--exclude", "*_*", "--exclude", "alpha:*"], ["beta:shared"]),
        (["--task", "forecasting"], ["beta:beta_net", "alpha:shared", "beta:shared", "beta:beta_net"]),
        (["--tag", "small"], ["alpha:alpha_net", "beta:beta_net"]),
        (["--plugin", "beta", "datasets"], ["beta:beta_net"]),
        (["strategy", "--plugin", "alpha"], ["alpha:alpha_local"]),
        (["metrics", "--task", "forecasting"], []),
    ],
)
def test_list_filters(zoo, args, expected):
    assert [e["qualified_name"] for e in json_out("list", *args, "--json")] == expected


def test_list_for_people(zoo):
    result = invoke("list")
    assert result.exit_code == 0
    out = result.stdout
    for title in ("architectures (6)", "datasets (2)", "metrics (1)", "strategies (1)"):
        assert title in out
    assert "alpha_net_large" in out and "Alpha's network" in out
    # An ambiguous bare name is shown qualified, once per plugin.
    assert "alpha:shared" in out and "beta:shared" in out
    assert "alpha:alpha_net " not in out


def test_list_with_no_match(zoo):
    result = invoke("list", "architectures", "zzz*")
    assert result.exit_code == 0
    assert "no entries match these filters; drop them to see every entry" in result.stdout
    assert json_out("list", "architectures", "zzz*", "--json") == []


def test_list_unknown_kind_is_a_usage_error(zoo):
    result = invoke("list", "xyzzy")
    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr == f"Error: unknown kind 'xyzzy'. Known kinds: {', '.join(zoo.registry.kinds)}.\n"


# -- bestiary info -----------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["alpha_net", "alpha:alpha_net"])
def test_info_json(zoo, name):
    data = json_out("info", name, "--json")
    assert data == zoo.registry.table("architectures").get("alpha_net").to_dict()
    assert data["search_space"] == {"width": {"type": "categorical", "choices": [8, 16]}}


def test_info_for_people(zoo):
    result = invoke("info", "alpha_net")
    assert result.exit_code == 0
    for text in ("alpha:alpha_net", "image-classification", "bestiary_fixtures.factories:make_thing"):
        assert text in result.stdout


def test_info_needs_kind_when_a_name_spans_kinds(zoo):
    result = invoke("info", "beta_net")
    assert result.exit_code == 2
    assert result.stderr == (
        "Error: 'beta_net' names entries of several kinds (architectures, datasets); pass --kind, for "
        "example `bestiary info beta_net --kind architectures`\n"
    )
    assert json_out("info", "beta_net", "--kind", "dataset", "--json")["kind"] == "datasets"
    assert json_out("info", "beta_net", "-k", "architectures", "--json")["kind"] == "architectures"


def test_info_ambiguous_name(zoo):
    result = invoke("info", "shared")
    assert result.exit_code == 2
    assert result.stderr == (
        f"Error: architecture name 'shared' is ambiguous: it is registered by alpha:shared (from bestiary "
        f"{VERSION}); beta:shared (from bestiary {VERSION}). Use one of the qualified names.\n"
    )
    assert json_out("info", "beta:shared", "--json")["description"] == "Beta's shared"


def test_info_unknown_name(zoo):
    result = invoke("info", "beta_nte")
    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr == (
        "Error: unknown entry 'beta_nte'. Did you mean: architecture beta_net, dataset beta_net? "
        "Run `bestiary list` to see them all.\n"
    )


def test_info_unknown_name_in_a_kind(zoo):
    result = invoke("info", "alpha_nte", "--kind", "metric")
    assert result.exit_code == 2
    assert result.stderr == (
        "Error: unknown metric 'alpha_nte'. Did you mean: alpha_metric? "
        "Run `bestiary list metrics` to see them all.\n"
    )


def test_info_unknown_kind(zoo):
    result = invoke("info", "alpha_net", "--kind", "widgets")
    assert result.exit_code == 2
    assert result.stderr.startswith("Error: unknown kind 'widgets'.")


# -- bestiary plugins --------------------------------------------------------------------------


def test_plugins_json(use_host):
    use_host("alpha", "import_error", disabled=["beta"])
    records = by_name(json_out("plugins", "--json"))
    assert list(records) == ["alpha", "import_error"]
    assert records["alpha"]["status"] == "ok"
    assert records["alpha"]["entries"] == {"architectures": 4, "datasets": 1, "metrics": 1, "strategies": 1}
    broken = records["import_error"]
    assert {k: broken[k] for k in ("status", "error", "distribution", "version", "source", "module")} == {
        "status": "failed",
        "error": IMPORT_ERROR,
        "distribution": "bestiary",
        "version": VERSION,
        "source": "builtin",
        "module": "bestiary_fixtures.import_error",
    }
    assert "Traceback (most recent call last)" in broken["traceback"]


def test_plugins_json_shows_blocked(use_host):
    use_host("alpha", "beta", disabled=["beta"])
    assert [(r["name"], r["status"]) for r in json_out("plugins", "--json")] == [
        ("alpha", "ok"),
        ("beta", "blocked"),
    ]


def test_plugins_for_people(use_host):
    use_host("alpha", "import_error")
    result = invoke("plugins")
    assert result.exit_code == 0
    assert "plugins (2)" in result.stdout and "alpha" in result.stdout and "failed" in result.stdout


def test_plugins_with_none_loaded(use_host):
    use_host()
    result = invoke("plugins")
    assert result.exit_code == 0
    assert "no plugins loaded; install one with `bestiary plugins install PACKAGE`" in result.stdout


# -- strict mode and failures ------------------------------------------------------------------


def test_broken_plugin_is_skipped_with_a_warning(use_host, caplog):
    use_host("alpha", "import_error")
    result = invoke("list", "--json")
    assert result.exit_code == 0
    assert len(json.loads(result.stdout)) == 7
    assert [r.getMessage() for r in caplog.records] == [
        (f"bestiary: plugin 'import_error' (bestiary {VERSION}) skipped: {IMPORT_ERROR} "
         "(see `bestiary plugins`)")
    ]


@pytest.mark.parametrize("command", [["list"], ["list", "--json"], ["info", "alpha_net"]])
def test_strict_plugins_flag_fails_with_exit_code_1(use_host, command):
    use_host("alpha", "import_error")
    result = invoke("--strict-plugins", *command)
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr.endswith(
        f"Error: 1 plugin(s) failed to load: plugin 'import_error' (bestiary {VERSION}): {IMPORT_ERROR}. "
        f"{STRICT_TAIL}\n"
    )


def test_strict_plugins_flag_passes_when_all_load(use_host):
    use_host("alpha", "beta")
    assert len(json_out("--strict-plugins", "list", "--json")) == 10


def test_unknown_command_suggests(zoo):
    result = invoke("lsit")
    assert result.exit_code == 2
    assert result.stderr.endswith(
        "Error: no such command 'lsit'. Did you mean: list? See `bestiary --help`.\n"
    )


def test_help_and_version():
    result = invoke("--help")
    assert result.exit_code == 0
    for command in ("list", "info", "plugins"):
        assert f"  {command} " in result.stdout
    assert "--strict-plugins" in result.stdout
    assert invoke("--version").stdout == f"bestiary, version {VERSION}\n"


# -- bestiary plugins install / uninstall (pip is stubbed here; the slow tests run it) ---------


@pytest.fixture
def pip_calls(monkeypatch):
    calls: list[list[str]] = []
    codes: list[int] = []

    def call(args, *a, **kw):
        calls.append(list(args))
        return codes.pop(0) if codes else 0

    import bestiary.cli.plugins as cli_plugins

    monkeypatch.setattr(cli_plugins.subprocess, "call", call)
    return calls, codes


def test_plugins_install_runs_pip_of_this_interpreter(pip_calls):
    calls, _ = pip_calls
    result = invoke("plugins", "install", "bestiary-example", "./other", "-U", "--no-cache-dir")
    assert result.exit_code == 0, result.stderr
    assert calls == [
        [sys.executable, "-m", "pip", "install", "bestiary-example", "./other", "--upgrade", "--no-cache-dir"]
    ]
    assert "run `bestiary plugins` to check that the plugin loads" in result.stderr


def test_plugins_install_offline_options(pip_calls):
    calls, _ = pip_calls
    result = invoke(
        "plugins", "install", "--no-deps", "--no-build-isolation", "--force-reinstall", "-e", "./zoo"
    )
    assert result.exit_code == 0, result.stderr
    assert calls == [
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--editable",
            "./zoo",
            "--force-reinstall",
            "--no-deps",
            "--no-build-isolation",
        ]
    ]


def test_plugins_install_needs_a_package(pip_calls):
    calls, _ = pip_calls
    result = invoke("plugins", "install")
    assert result.exit_code == 2
    assert result.stderr.endswith("Error: name at least one package, or a path with -e\n")
    assert calls == []


def test_plugins_uninstall(pip_calls):
    calls, codes = pip_calls
    assert invoke("plugins", "uninstall", "bestiary-example").exit_code == 0
    assert calls == [[sys.executable, "-m", "pip", "uninstall", "--yes", "bestiary-example"]]
    codes.append(3)
    result = invoke("plugins", "uninstall", "bestiary-example")
    assert result.exit_code == 1
    assert result.stderr == "Error: pip exited with status 3\n"


# -- in a fresh process, as a user runs it -----------------------------------------------------


@pytest.fixture
def installed(site):
    """Fake installed distributions: alpha (bestiary-alpha 1.0) and a broken one."""
    write_dist(site, "bestiary-alpha", "1.0", {"alpha": "bestiary_fixtures.alpha"})
    write_dist(site, "bestiary-broken-fixture", "0.0.2", {"broken": "bestiary_fixtures.import_error"})
    return site


def test_subprocess_list_and_plugins(run_bestiary, installed):
    result = run_bestiary("list", "--plugin", "alpha", "--json", paths=[installed])
    assert result.returncode == 0, result.stderr
    entries = json.loads(result.stdout)
    assert {e["qualified_name"] for e in entries} >= {
        "alpha:alpha_net",
        "alpha:alpha_data",
        "alpha:alpha_local",
    }
    assert {(e["distribution"], e["version"]) for e in entries} == {("bestiary-alpha", "1.0")}
    assert result.stderr == (
        f"bestiary: plugin 'broken' (bestiary-broken-fixture 0.0.2) skipped: {IMPORT_ERROR} "
        "(see `bestiary plugins`)\n"
    )

    result = run_bestiary("plugins", "--json", paths=[installed])
    assert result.returncode == 0, result.stderr
    records = by_name(json.loads(result.stdout))
    assert (records["alpha"]["status"], records["alpha"]["source"]) == ("ok", "entrypoint")
    broken = records["broken"]
    assert (broken["status"], broken["error"]) == ("failed", IMPORT_ERROR)
    assert (broken["distribution"], broken["version"]) == ("bestiary-broken-fixture", "0.0.2")


def test_subprocess_exit_codes(run_bestiary, installed):
    unknown = run_bestiary("info", "alpha_nte", "--kind", "architectures", paths=[installed])
    assert unknown.returncode == 2
    assert unknown.stderr.endswith(
        "Error: unknown architecture 'alpha_nte'. Did you mean: alpha_net, alpha_net_large? "
        "Run `bestiary list architectures` to see them all.\n"
    )
    assert unknown.stdout == ""

    expected = (
        "Error: 1 plugin(s) failed to load: plugin 'broken' (bestiary-broken-fixture 0.0.2): "
        f"{IMPORT_ERROR}. {STRICT_TAIL}\n"
    )
    strict = run_bestiary("--strict-plugins", "list", paths=[installed])
    assert (strict.returncode, strict.stdout) == (1, "")
    assert strict.stderr.endswith(expected)
    strict_env = run_bestiary("list", paths=[installed], env={"BESTIARY_STRICT_PLUGINS": "1"})
    assert strict_env.returncode == 1
    assert strict_env.stderr.endswith(expected)

    # Blocking the broken plugin by name lets strict mode pass.
    blocked = run_bestiary(
        "--strict-plugins", "plugins", "--json", paths=[installed], env={"BESTIARY_DISABLE_PLUGINS": "broken"}
    )
    assert blocked.returncode == 0, blocked.stderr
    assert by_name(json.loads(blocked.stdout))["broken"]["status"] == "blocked"


def test_subprocess_without_autoload(run_bestiary, installed):
    result = run_bestiary(
        "plugins", "--json", paths=[installed], env={"BESTIARY_DISABLE_PLUGIN_AUTOLOAD": "1"}
    )
    assert result.returncode == 0, result.stderr
    records = json.loads(result.stdout)
    assert {r["source"] for r in records} <= {"builtin"}
    assert [r["name"] for r in records] == [p.rsplit(".", 1)[-1] for p in bestiary.DEFAULT_PLUGINS]


def test_console_script_entry_point():
    from importlib.metadata import distribution

    scripts = {
        ep.name: ep.value for ep in distribution("bestiary").entry_points if ep.group == "console_scripts"
    }
    assert scripts == {"bestiary": "bestiary.cli:main"}


def test_python_dash_m_bestiary_version():
    result = subprocess.run([sys.executable, "-m", "bestiary", "--version"], capture_output=True, text=True)
    assert result.returncode == 0
    assert result.stdout == f"bestiary, version {VERSION}\n"
