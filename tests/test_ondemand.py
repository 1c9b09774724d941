"""Entries offered on demand: resolve_entry for a qualified name, discover_entries for --all."""

from __future__ import annotations

import json

import pytest
from bestiary_testing import make_host
from click.testing import CliRunner

import bestiary
from bestiary.cli import main
from bestiary.registry import UnknownEntryError


@pytest.fixture
def ondemand():
    from bestiary_fixtures import ondemand as module

    module.calls.update(resolve=0, discover=0)
    return module


def test_qualified_name_is_resolved_on_demand_and_cached(ondemand):
    host = make_host("ondemand")
    table = host.registry.table("architectures")
    entry = table.get("zoo:zoo_b")
    assert (entry.qualified_name, entry.provenance.plugin, entry.namespace) == ("zoo:zoo_b", "ondemand", "zoo")
    assert entry.description == "on demand zoo_b"
    assert table.get("zoo:zoo_b") is entry
    assert ondemand.calls["resolve"] == 1
    assert entry.build(x=1) == {"x": 1}


def test_on_demand_entries_do_not_take_bare_names(ondemand):
    host = make_host("ondemand")
    table = host.registry.table("architectures")
    table.get("zoo:zoo_b")
    with pytest.raises(UnknownEntryError):
        table.get("zoo_b")
    assert table.get("zoo_a").qualified_name == "ondemand:zoo_a"  # the registered one
    with pytest.raises(UnknownEntryError) as err:
        table.get("zoo:zoo_z")
    assert str(err.value).startswith("unknown architecture 'zoo:zoo_z'.")


def test_listing_shows_on_demand_entries_only_when_asked(ondemand):
    host = make_host("ondemand")
    table = host.registry.table("architectures")
    assert [e.qualified_name for e in table.select()] == ["ondemand:zoo_a"]
    assert ondemand.calls["discover"] == 0
    names = [e.qualified_name for e in table.select(dynamic=True)]
    assert names == ["ondemand:zoo_a", "zoo:zoo_a", "zoo:zoo_b", "zoo:zoo_c"]
    table.select(dynamic=True)
    assert ondemand.calls["discover"] == 1


def test_cli_list_all_and_qualified_patterns(ondemand):
    bestiary.reset_host(make_host("ondemand"))
    runner = CliRunner()
    plain = json.loads(runner.invoke(main, ["list", "architectures", "--json"]).stdout)
    assert [e["qualified_name"] for e in plain] == ["ondemand:zoo_a"]
    every = json.loads(runner.invoke(main, ["list", "architectures", "--all", "--json"]).stdout)
    assert [e["qualified_name"] for e in every][1:] == ["zoo:zoo_a", "zoo:zoo_b", "zoo:zoo_c"]
    assert every[1]["namespace"] == "zoo" and every[1]["plugin"] == "ondemand"
    pattern = json.loads(runner.invoke(main, ["list", "architectures", "zoo:zoo_[bc]", "--json"]).stdout)
    assert [e["qualified_name"] for e in pattern] == ["zoo:zoo_b", "zoo:zoo_c"]
    info = runner.invoke(main, ["info", "zoo:zoo_c", "--json"])
    assert info.exit_code == 0 and json.loads(info.stdout)["description"] == "on demand zoo_c"
