"""Suites: the built-in ones, reading and validating suite files, expanding a matrix into cells."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

import bestiary
from bestiary import hookimpl
from bestiary.benchmarks.suite import Cell, load_suite, parse_suite, read_suite, resolve_suite
from bestiary.cli import main
from bestiary.errors import ConfigError

BUILTIN = {"quickstart": "quality", "throughput": "throughput", "throughput-gpu": "throughput",
           "scaling": "scaling", "registry": "registry"}


def test_builtin_suites_are_registered_and_valid(toy_host):
    entries = {e.name: e for e in bestiary.list_entries("benchmarks")}
    assert set(BUILTIN) <= set(entries)
    for name, measure in BUILTIN.items():
        entry = entries[name]
        assert entry.provenance.plugin == "suites" and entry.metadata["measure"] == measure
        suite = resolve_suite(name)
        assert (suite.name, suite.measure) == (name, measure) and suite.description == entry.description
        assert suite.cells()


def test_quickstart_covers_vision_and_forecasting(toy_host):
    cells = resolve_suite("quickstart").cells()
    pairs = {(c.arch, c.dataset) for c in cells}
    assert {("resnet18", "digits"), ("vit_tiny_patch16_224", "digits"), ("deepar", "co2"), ("lstm", "co2"),
            ("seasonal_naive", "co2")} <= pairs
    vit = next(c for c in cells if c.arch.startswith("vit_"))
    assert vit.config["model"] == {"depth": 4, "patch_size": 8}


def test_gpu_suite_is_bf16_channels_last_batch_256_eager_and_compiled(toy_host):
    cells = resolve_suite("throughput-gpu").cells()
    assert sorted((c.arch, c.compile) for c in cells) == [
        ("resnet50", False), ("resnet50", True), ("vit_base_patch16_224", False), ("vit_base_patch16_224", True)]
    for c in cells:
        assert (c.precision, c.batch_size, c.channels_last, c.settings["bare"]) == ("bf16", 256, True, True)
        assert (c.settings["warmup"], c.settings["iterations"], c.settings["device"]) == (10, 30, "cuda")
        assert c.error is None


def test_patterns_include_entries_of_plugins_added_later(toy_host, suite_file):
    path = suite_file("toys", """
        description = "toy models"
        measure = "throughput"
        [[matrix]]
        architectures = ["toy_*"]
        task = "image-classification"
        exclude = ["toy_cnn"]
        """)
    assert [c.arch for c in read_suite(path).cells()] == ["toy_mlp"]

    class ThirdParty:
        @hookimpl
        def register_architectures(self, register):  # type: ignore[no-untyped-def]
            register("toy_wide", "toyzoo:toy_mlp", task="image-classification", description="another plugin's",
                     defaults={"hidden": 64})

    assert toy_host.add_plugin(ThirdParty(), "thirdparty").status == "ok"
    assert [c.arch for c in read_suite(path).cells()] == ["toy_mlp", "toy_wide"]


def test_unknown_names_become_error_cells(toy_host, suite_file):
    suite = read_suite(suite_file("typos", """
        description = "typos"
        measure = "quality"
        [[matrix]]
        architectures = ["toy_mpl", "toy_mlp", "nothing_*"]
        datasets = ["blobs"]
        strategies = ["singel"]
        """))
    cells = {c.arch: c for c in suite.cells()}
    assert "toy_mlp" in cells["toy_mpl"].error  # a close match
    assert "no architecture matches 'nothing_*'" in cells["nothing_*"].error
    assert "single" in cells["toy_mlp"].error  # the strategy typo


@pytest.mark.parametrize(("text", "message"), [
    ('description = "x"\nmeasure = "speed"\n[[matrix]]\narchitectures = ["a"]', "measure must be one of quality"),
    ('description = "x"\nmeasure = "quality"\nrepeat = 2\n[[matrix]]\narchitectures = ["a"]', "unknown key 'repeat'"),
    ('description = "x"\nmeasure = "quality"', "at least one [[matrix]] group"),
    ('description = "x"\nmeasure = "quality"\n[[matrix]]\narchitectures = ["a"]', "give datasets"),
    ('description = "x"\nmeasure = "throughput"\n[settings]\nwarm_up = 3\n[[matrix]]\narchitectures = ["a"]',
     "unknown throughput setting 'warm_up'; settings: bare"),
    ('description = "x"\nmeasure = "registry"\n[[matrix]]\nprobes = ["boot"]', "probes must be a list of import"),
    (('description = "x"\nmeasure = "quality"\n[[matrix]]\narchitectures = ["a"]\ndatasets = ["b"]\n'
      'target = { metric = "accuracy" }'), "target must be"),
])
def test_invalid_suites_say_what_is_allowed(tmp_path, text, message):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("(", r"\(")):
        read_suite(path)


def test_cell_ids_and_filters():
    cell = Cell("s", "throughput", "resnet50", None, precision="bf16", batch_size=256, compile=True, channels_last=True)
    assert cell.id == "resnet50/single/w1/bf16/b256/compile/cl"
    assert cell.matches("resnet*") and cell.matches("*/bf16/*") and cell.matches("compile")
    assert not cell.matches("vit_*")


def test_load_suite_names_a_missing_resource():
    with pytest.raises(ConfigError, match="missing from package 'bestiary.benchmarks.suites'.*package data"):
        load_suite("bestiary.benchmarks.suites", "nope.toml")
    assert parse_suite({"description": "d", "measure": "registry", "matrix": [{"probes": ["lookup"]}]}, "r").repeats == 1


def test_cli_lists_suites_and_cells(toy_host, suite_file):
    runner = CliRunner()
    result = runner.invoke(main, ["bench", "list", "--json"])
    assert result.exit_code == 0, result.output
    assert {s["name"]: s["measure"] for s in json.loads(result.output)}.items() >= BUILTIN.items()
    result = runner.invoke(main, ["bench", "run", "quickstart", "--list-cells", "--filter", "*naive*"])
    assert result.exit_code == 0, result.output
    assert result.output.split() == ["seasonal_naive/co2/single/w1/fp32/b32"]
    result = runner.invoke(main, ["bench", "run", "quickstrat"])
    assert result.exit_code == 2 and "quickstart" in result.output  # a close match
    result = runner.invoke(main, ["bench", "run", "quickstart", "--filter", "nothing"])
    assert result.exit_code == 2 and "matches no cell" in result.output


def _not_a_suite():  # type: ignore[no-untyped-def]
    return {"description": "a table, not a Suite"}


class BrokenSuites:
    @hookimpl
    def register_benchmarks(self, register):  # type: ignore[no-untyped-def]
        register("dict_suite", _not_a_suite, description="returns a dict")
        register("mislabelled", "bestiary.benchmarks.suite:load_suite", description="says quality, is registry",
                 defaults={"package": "bestiary.benchmarks.suites", "resource": "registry.toml"},
                 metadata={"measure": "quality"})


def test_conformance_check_of_benchmark_entries(toy_host):
    from bestiary.testing import ConformanceError, check_benchmark, check_entry

    assert check_entry(bestiary.get_entry("benchmarks", "quickstart")).passed == ["build", "measure", "cells"]
    assert toy_host.add_plugin(BrokenSuites(), "broken_suites").status == "ok"
    with pytest.raises(ConformanceError, match="returned dict, not a Suite"):
        check_benchmark("dict_suite")
    with pytest.raises(ConformanceError, match="metadata says 'quality' but the suite measures 'registry'"):
        check_benchmark("mislabelled")
