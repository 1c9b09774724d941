"""Registry tables and the Python API: lookup, errors that explain, listing, entries."""

from __future__ import annotations

import dataclasses
import importlib
import pkgutil
import re

import pytest

import bestiary
from bestiary.registry import (
    AmbiguousEntryError,
    DuplicateEntryError,
    Entry,
    InvalidEntryError,
    LookupFailure,
    Provenance,
    Registry,
    Table,
    UnknownEntryError,
    UnknownKindError,
    singular,
)

KINDS = ["architectures", "datasets", "metrics", "strategies"]
ALPHA = Provenance("alpha", "bestiary-alpha", "1.0")
BETA = Provenance("beta", "bestiary-beta", "2.0.1")
THING = "bestiary_fixtures.factories:make_thing"


def entry(name: str, provenance: Provenance = ALPHA, kind: str = "architectures", **kwargs) -> Entry:
    kwargs.setdefault("factory", THING)
    return Entry(name=name, kind=kind, provenance=provenance, **kwargs)


@pytest.fixture
def table() -> Table:
    table = Table("architectures")
    table.add(entry("resnet18", task="image-classification", tags=("vision", "small")))
    table.add(entry("resnet50", task="image-classification", tags=("vision",)))
    table.add(entry("vit_base_patch16_224", task="image-classification", tags=("vision", "transformer")))
    table.add(entry("deepar", task="forecasting", tags=("series",)))
    table.add(entry("lstm", BETA, task="forecasting", tags=("series", "small")))
    table.add(entry("deepar", BETA, task="forecasting", tags=("series",)))
    return table


# -- lookup ------------------------------------------------------------------------------------


def test_lookup_by_bare_and_qualified_name(table):
    assert table.get("resnet50").qualified_name == "alpha:resnet50"
    assert table.get("alpha:resnet50") is table.get("resnet50")
    assert table.get("beta:lstm") is table.get("lstm")
    assert table.get("beta:deepar").provenance == BETA
    assert table.get("alpha:deepar").provenance == ALPHA
    assert "resnet50" in table and "beta:lstm" in table and "deepar" in table
    assert "resnet51" not in table
    assert len(table) == 6


def test_ambiguous_bare_name(table):
    with pytest.raises(AmbiguousEntryError) as excinfo:
        table.get("deepar")
    error = excinfo.value
    assert str(error) == (
        "architecture name 'deepar' is ambiguous: it is registered by alpha:deepar (from "
        "bestiary-alpha 1.0); beta:deepar (from bestiary-beta 2.0.1). Use one of the qualified names."
    )
    assert isinstance(error, KeyError) and isinstance(error, LookupFailure)
    assert error.candidates == [
        ("alpha:deepar", "bestiary-alpha", "1.0"),
        ("beta:deepar", "bestiary-beta", "2.0.1"),
    ]
    assert (error.kind, error.name) == ("architectures", "deepar")


def test_unknown_name_suggests_close_matches(table):
    with pytest.raises(UnknownEntryError) as excinfo:
        table.get("resnet5")
    error = excinfo.value
    assert str(error) == (
        "unknown architecture 'resnet5'. Did you mean: resnet50, resnet18? "
        "Run `bestiary list architectures` to see them all."
    )
    assert isinstance(error, KeyError)
    assert error.suggestions == ["resnet50", "resnet18"]
    assert (error.kind, error.name) == ("architectures", "resnet5")


def test_unknown_name_without_close_matches(table):
    with pytest.raises(KeyError) as excinfo:
        table.get("zzz")
    assert (
        str(excinfo.value) == "unknown architecture 'zzz'. Run `bestiary list architectures` to see them all."
    )


def test_unknown_plugin_in_qualified_name(table):
    with pytest.raises(UnknownEntryError) as excinfo:
        table.get("gamma:lstm")
    assert str(excinfo.value) == (
        "unknown architecture 'gamma:lstm'. Did you mean: beta:lstm? "
        "Run `bestiary list architectures` to see them all."
    )


def test_prefix_suggestions_complete_the_list(table):
    # "vit" is too short to be close to the long name, but a prefix of it.
    assert table.suggest("vit") == ["vit_base_patch16_224"]


def test_lookup_errors_print_their_message_not_a_repr(table):
    with pytest.raises(KeyError) as excinfo:
        table.get("zzz")
    assert not str(excinfo.value).startswith(("'", '"'))


def test_unknown_kind():
    registry = Registry(KINDS)
    with pytest.raises(UnknownKindError) as excinfo:
        registry.table("modles")
    assert str(excinfo.value) == (
        "unknown kind 'modles'. Known kinds: architectures, datasets, metrics, strategies."
    )
    with pytest.raises(KeyError) as excinfo:
        registry.table("metrik")
    assert str(excinfo.value) == (
        "unknown kind 'metrik'. Did you mean: metric, metrics? Known kinds: architectures, datasets, "
        "metrics, strategies."
    )


@pytest.mark.parametrize(
    ("asked", "kind"),
    [
        ("architectures", "architectures"),
        ("architecture", "architectures"),
        ("strategy", "strategies"),
        ("metric", "metrics"),
        ("dataset", "datasets"),
    ],
)
def test_singular_kinds_are_accepted(asked, kind):
    registry = Registry(KINDS)
    assert registry.resolve_kind(asked) == kind
    assert registry.table(asked) is registry.table(kind)


def test_singular():
    assert [singular(k) for k in KINDS] == ["architecture", "dataset", "metric", "strategy"]


def test_registry_add_and_find():
    registry = Registry(KINDS)
    registry.add(entry("lstm"))
    registry.add(entry("lstm", kind="datasets"))
    registry.add(entry("lstm", BETA, kind="datasets"))
    assert [e.qualified_name for e in registry.find("lstm")] == ["alpha:lstm", "alpha:lstm", "beta:lstm"]
    assert [e.kind for e in registry.find("beta:lstm")] == ["datasets"]
    assert registry.find("gru") == []
    assert [t.kind for t in registry] == KINDS == registry.kinds


def test_duplicate_qualified_name_is_refused(table):
    with pytest.raises(DuplicateEntryError) as excinfo:
        table.add(entry("resnet50"))
    assert str(excinfo.value) == "architecture 'alpha:resnet50' is registered twice by plugin 'alpha'"
    assert isinstance(excinfo.value, InvalidEntryError) and isinstance(excinfo.value, ValueError)


def test_entry_of_another_kind_is_refused(table):
    with pytest.raises(ValueError, match="entry of kind 'datasets' added to table 'architectures'"):
        table.add(entry("mnist", kind="datasets"))


# -- listing -----------------------------------------------------------------------------------


def qualified(entries) -> list[str]:
    return [e.qualified_name for e in entries]


def test_listing_is_sorted_by_name_then_qualified_name(table):
    assert (
        qualified(table)
        == qualified(table.select())
        == [
            "alpha:deepar",
            "beta:deepar",
            "beta:lstm",
            "alpha:resnet18",
            "alpha:resnet50",
            "alpha:vit_base_patch16_224",
        ]
    )


@pytest.mark.parametrize(
    ("include", "exclude", "expected"),
    [
        ("resnet*", None, ["alpha:resnet18", "alpha:resnet50"]),
        (["resnet*", "vit_*"], None, ["alpha:resnet18", "alpha:resnet50", "alpha:vit_base_patch16_224"]),
        ("*", "resnet*", ["alpha:deepar", "beta:deepar", "beta:lstm", "alpha:vit_base_patch16_224"]),
        (None, ["resnet*", "*deepar"], ["beta:lstm", "alpha:vit_base_patch16_224"]),
        ("beta:*", None, ["beta:deepar", "beta:lstm"]),
        ("*:deepar", "beta:*", ["alpha:deepar"]),
        ("resnet?8", None, ["alpha:resnet18"]),
        # A pattern without ':' is about the bare name only, never the plugin part.
        ("a*", None, []),
        (
            "*",
            "b*",
            [
                "alpha:deepar",
                "beta:deepar",
                "beta:lstm",
                "alpha:resnet18",
                "alpha:resnet50",
                "alpha:vit_base_patch16_224",
            ],
        ),
        ("*:*", "alpha:*", ["beta:deepar", "beta:lstm"]),
        ("resnet[5]*", None, ["alpha:resnet50"]),
        ("ResNet*", None, []),  # case-sensitive, like the names
        ("nothing*", None, []),
    ],
)
def test_listing_with_patterns(table, include, exclude, expected):
    assert qualified(table.select(include, exclude)) == expected


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        ({"task": "forecasting"}, ["alpha:deepar", "beta:deepar", "beta:lstm"]),
        ({"tag": "small"}, ["beta:lstm", "alpha:resnet18"]),
        ({"plugin": "beta"}, ["beta:deepar", "beta:lstm"]),
        ({"task": "forecasting", "tag": "small", "plugin": "beta"}, ["beta:lstm"]),
        ({"task": "image-classification", "plugin": "beta"}, []),
        ({"tag": "vision", "exclude": "vit*"}, ["alpha:resnet18", "alpha:resnet50"]),
    ],
)
def test_listing_with_filters(table, filters, expected):
    assert qualified(table.select(**filters)) == expected


# -- entries -----------------------------------------------------------------------------------


def test_entry_is_frozen():
    e = entry("resnet50", defaults={"num_classes": 10}, tags=["vision"], metadata={"params": 25})
    with pytest.raises(dataclasses.FrozenInstanceError):
        e.name = "resnet18"  # type: ignore[misc]
    with pytest.raises(TypeError):
        e.defaults["num_classes"] = 100  # type: ignore[index]
    with pytest.raises(TypeError):
        e.metadata["params"] = 1  # type: ignore[index]
    assert e.tags == ("vision",)


def test_entry_copies_what_it_is_given():
    defaults = {"num_classes": 10}
    tags = ["vision"]
    e = entry("resnet50", defaults=defaults, tags=tags)
    defaults["num_classes"] = 100
    tags.append("large")
    assert dict(e.defaults) == {"num_classes": 10}
    assert e.tags == ("vision",)


def test_entry_normalises_tags_and_mappings():
    e = entry("resnet50", tags="vision", defaults=None, search_space=None, metadata=None)
    assert e.tags == ("vision",)
    assert (dict(e.defaults), dict(e.search_space), dict(e.metadata)) == ({}, {}, {})


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            {"name": "ResNet50"},
            (
                "invalid architecture name 'ResNet50': names are lower-case letters, digits, '_', "
                "'-' and '.', starting with a letter or digit (for example 'resnet50')"
            ),
        ),
        (
            {"name": "_private"},
            (
                "invalid architecture name '_private': names are lower-case letters, digits, '_', "
                "'-' and '.', starting with a letter or digit (for example 'resnet50')"
            ),
        ),
        (
            {"name": "a:b"},
            (
                "invalid architecture name 'a:b': names are lower-case letters, digits, '_', "
                "'-' and '.', starting with a letter or digit (for example 'resnet50')"
            ),
        ),
        (
            {"factory": "torchvision.models.resnet50"},
            (
                "architecture 'net': factory 'torchvision.models.resnet50' is "
                "not an import string of the form 'package.module:attribute' and not a callable"
            ),
        ),
        (
            {"factory": 3},
            "architecture 'net': factory must be 'package.module:attribute' or a callable, got int",
        ),
        (
            {"task": "Forecasting"},
            "architecture 'net': task must be a lower-case name or None, got 'Forecasting'",
        ),
        ({"description": None}, "architecture 'net': description must be a string"),
        ({"tags": 5}, "architecture 'net': tags must be a sequence of strings"),
        ({"tags": ("ok", "")}, "architecture 'net': tags must be non-empty strings, got ('ok', '')"),
        ({"defaults": [("a", 1)]}, "architecture 'net': defaults must be a mapping with string keys"),
        ({"search_space": {1: "x"}}, "architecture 'net': search_space must be a mapping with string keys"),
        ({"metadata": "params=3"}, "architecture 'net': metadata must be a mapping with string keys"),
    ],
)
def test_invalid_entries(kwargs, message):
    kwargs = {"name": "net", "factory": THING, **kwargs}
    with pytest.raises(InvalidEntryError) as excinfo:
        Entry(kind="architectures", provenance=ALPHA, **kwargs)
    assert str(excinfo.value) == message
    assert isinstance(excinfo.value, ValueError)


def test_build_merges_defaults_with_keyword_arguments():
    e = entry("net", defaults={"depth": 2, "width": 8})
    assert e.build() == {"depth": 2, "width": 8}
    assert e.build(width=16, dropout=0.1) == {"depth": 2, "width": 16, "dropout": 0.1}
    assert dict(e.defaults) == {"depth": 2, "width": 8}


def test_build_with_a_callable_factory():
    calls = []

    def factory(**kwargs):
        calls.append(kwargs)
        return "built"

    e = entry("net", factory=factory, defaults={"depth": 2})
    assert e.load() is factory
    assert e.build(depth=3) == "built"
    assert calls == [{"depth": 3}]
    assert e.factory_path == f"{__name__}:test_build_with_a_callable_factory.<locals>.factory"


def test_factory_attribute_path():
    e = entry("net", factory="bestiary_fixtures.factories:make_thing.__call__")
    assert e.build(a=1) == {"a": 1}


@pytest.mark.parametrize(
    ("factory", "cause"),
    [
        (
            "bestiary_fixtures.nowhere:build",
            "ModuleNotFoundError: No module named 'bestiary_fixtures.nowhere'",
        ),
        (
            "bestiary_fixtures.factories:missing",
            "AttributeError: module 'bestiary_fixtures.factories' has no attribute 'missing'",
        ),
    ],
)
def test_factory_load_failure_names_plugin_and_distribution(factory, cause):
    e = entry("net", BETA, factory=factory)
    with pytest.raises(ImportError) as excinfo:
        e.build()
    assert str(excinfo.value) == (
        f"architecture 'beta:net' cannot be built: its factory {factory!r} failed to load ({cause}). "
        "It comes from bestiary-beta 2.0.1; reinstall or upgrade it (`bestiary plugins install -U "
        "bestiary-beta`)."
    )


def test_entry_to_dict():
    e = entry(
        "net",
        BETA,
        task="forecasting",
        description="A net",
        tags=("series",),
        defaults={"depth": 2},
        search_space={"depth": {"type": "categorical", "choices": [1, 2]}},
        metadata={"params": 10},
    )
    assert e.to_dict() == {
        "name": "net",
        "qualified_name": "beta:net",
        "kind": "architectures",
        "task": "forecasting",
        "plugin": "beta",
        "namespace": None,
        "distribution": "bestiary-beta",
        "version": "2.0.1",
        "description": "A net",
        "tags": ["series"],
        "factory": THING,
        "defaults": {"depth": 2},
        "search_space": {"depth": {"type": "categorical", "choices": [1, 2]}},
        "metadata": {"params": 10},
    }


# -- the Python API over the process-wide host -------------------------------------------------


def test_api_lists_looks_up_and_builds(use_host):
    host = use_host("alpha", "beta")
    assert bestiary.kinds() == host.registry.kinds
    assert set(KINDS) <= set(bestiary.kinds())
    everything = bestiary.list_entries()
    assert len(everything) == sum(len(t) for t in host.registry) == 10
    assert qualified(bestiary.list_entries("architecture", "alpha*", exclude="*large")) == ["alpha:alpha_net"]
    assert qualified(bestiary.list_entries("architectures", task="forecasting", plugin="beta")) == [
        "beta:beta_net",
        "beta:shared",
    ]
    assert qualified(bestiary.list_entries(tag="small")) == ["alpha:alpha_net", "beta:beta_net"]
    assert qualified(bestiary.list_entries(pattern="beta_net")) == ["beta:beta_net", "beta:beta_net"]
    assert bestiary.get_entry("architectures", "alpha_net").search_space == {"width": {"type": "categorical", "choices": [8, 16]}}
    assert bestiary.build("architectures", "alpha:alpha_net", width=32) == {"depth": 2, "width": 32}
    assert [p.name for p in bestiary.list_plugins()] == ["alpha", "beta"]


def test_api_errors(use_host):
    use_host("alpha", "beta")
    with pytest.raises(AmbiguousEntryError):
        bestiary.get_entry("architectures", "shared")
    with pytest.raises(UnknownEntryError) as excinfo:
        bestiary.build("metrics", "alpha_metrik")
    assert str(excinfo.value) == (
        "unknown metric 'alpha_metrik'. Did you mean: alpha_metric? "
        "Run `bestiary list metrics` to see them all."
    )
    with pytest.raises(UnknownKindError):
        bestiary.list_entries("widgets")
    with pytest.raises(ImportError, match="alpha:broken_factory"):
        bestiary.build("architectures", "broken_factory")


def test_public_names():
    for name in bestiary.__all__:
        assert getattr(bestiary, name) is not None
    assert issubclass(bestiary.UnknownEntryError, KeyError)
    assert issubclass(bestiary.AmbiguousEntryError, KeyError)
    assert issubclass(bestiary.UnknownKindError, KeyError)
    assert issubclass(bestiary.InvalidEntryError, ValueError)


def test_public_names_survive_importing_subpackages():
    # Importing bestiary.X sets the attribute X on bestiary: a public name X would be replaced.
    before = {name: getattr(bestiary, name) for name in bestiary.__all__}
    for package in ("bestiary.plugins", "bestiary.registry", "bestiary.benchmarks"):
        importlib.import_module(package)
    assert {name: getattr(bestiary, name) for name in bestiary.__all__} == before
    submodules = {m.name for m in pkgutil.iter_modules(bestiary.__path__)}
    assert not set(bestiary.__all__) & (submodules | {"plugins", "registry", "benchmarks"})


def test_suggestions_offer_qualified_forms_of_ambiguous_names():
    table = Table("architectures")
    one, two = Provenance("one", "one-dist", "1"), Provenance("two", "two-dist", "2")
    table.add(entry("tiny_mlp", one))
    table.add(entry("tiny_mlp", two))
    table.add(entry("tiny_cnn", one))
    assert table.suggest("tiny_ml") == ["one:tiny_mlp", "two:tiny_mlp", "tiny_cnn"]
    assert table.suggest("one:tiny_ml")[0] == "one:tiny_mlp"


@pytest.mark.parametrize(
    "space,message",
    [
        ({"lr": {"low": 1, "high": 2}}, "search_space['lr'] must be a mapping with type float, int or categorical"),
        ({"lr": {"type": "float", "low": 1}}, "search_space['lr'] of type float needs high"),
        ({"lr": {"type": "float", "low": 0, "high": 1, "log": True}}, "need low < high (and low > 0 with log)"),
        ({"bs": {"type": "categorical", "choices": []}}, "choices must be a non-empty list"),
    ],
)
def test_search_space_is_validated(space, message):
    with pytest.raises(InvalidEntryError, match=re.escape(message)):
        entry("net", search_space=space)


def test_metadata_must_be_json():
    with pytest.raises(InvalidEntryError, match="metadata must hold JSON values only"):
        entry("net", metadata={"dtype": object()})


@pytest.mark.parametrize(
    "metadata,message",
    [
        ({}, "metric 'err' declares no direction: register it with metadata={'higher_is_better': True}"),
        ({"higher_is_better": "yes"}, "metadata['higher_is_better'] must be True, False or None, got 'yes'"),
    ],
)
def test_a_metric_entry_must_declare_its_direction(metadata, message):
    with pytest.raises(InvalidEntryError, match=re.escape(message)):
        entry("err", kind="metrics", metadata=metadata)
    entry("net", metadata=metadata if isinstance(metadata.get("higher_is_better"), bool) else {})  # other kinds: no rule


def test_metric_direction_is_read_from_the_entry():
    from bestiary.registry import Registry, metric_direction

    registry = Registry(["metrics"])
    registry.add(entry("err", kind="metrics", metadata={"higher_is_better": False}))
    registry.add(entry("acc", kind="metrics", metadata={"higher_is_better": True}))
    registry.add(entry("matrix", kind="metrics", metadata={"higher_is_better": None}))
    assert [metric_direction(n, registry) for n in ("err", "acc", "matrix", "loss")] == ["min", "max", None, "min"]
    assert metric_direction(registry.table("metrics").get("alpha:err")) == "min"
    with pytest.raises(UnknownEntryError):
        metric_direction("nope", registry)
