"""Search spaces, durations and the TOML configs autopilot writes: pure functions, no training."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

import bestiary
from bestiary.engine.config import RunConfig
from bestiary.errors import ConfigError
from bestiary.registry import InvalidEntryError
from bestiary.registry.space import SearchSpace
from bestiary.tune import apply_params, load_space_file, search_space, space_of
from bestiary.tune.autopilot import to_toml
from bestiary.tune.budget import parse_duration
from bestiary.tune.space import check_space


def test_the_entry_space_becomes_optuna_distributions() -> None:
    from optuna.distributions import CategoricalDistribution, FloatDistribution

    dists = search_space(bestiary.get_entry("architectures", "resnet18"))
    assert isinstance(dists["lr"], FloatDistribution) and dists["lr"].log
    assert isinstance(dists["batch_size"], CategoricalDistribution)
    assert set(dists) >= {"lr", "weight_decay", "model.drop_path_rate"}


def test_a_space_file_replaces_or_extends_the_entry_space(tmp_path: Path) -> None:
    entry = bestiary.get_entry("architectures", "resnet18")
    only = tmp_path / "only.toml"
    only.write_text('[lr]\ntype = "float"\nlow = 0.001\nhigh = 0.01\nlog = true\n')
    assert set(space_of(entry, only)) == {"lr"}
    extend = tmp_path / "extend.toml"
    extend.write_text('inherit = true\nexclude = ["batch_size"]\n["model.drop_rate"]\ntype = "float"\nlow = 0.0\nhigh = 0.5\n')
    space = space_of(entry, extend)
    assert "batch_size" not in space and "model.drop_rate" in space and "lr" in space
    assert load_space_file(extend, {"lr": {}, "batch_size": {}})["lr"] == {}


def test_bad_spaces_name_the_remedy(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="Did you mean 'weight_decay'"):
        check_space({"weight_decai": {"type": "float", "low": 0.0, "high": 1.0}})
    with pytest.raises(ConfigError, match="model.<option>"):
        check_space({"optim.lr": {"type": "float", "low": 0.0, "high": 1.0}})
    with pytest.raises(ConfigError, match="needs choices"):
        check_space({"batch_size": {"type": "categorical"}})
    with pytest.raises(ConfigError, match="low < high"):
        check_space({"lr": {"type": "float", "low": 0.0, "high": 1.0, "log": True}})
    with pytest.raises(ConfigError, match="not a config field a search may vary"):
        check_space({"dataset": {"type": "categorical", "choices": ["a"]}})
    bad = tmp_path / "bad.toml"
    bad.write_text("[lr\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        space_of(bestiary.get_entry("architectures", "resnet18"), bad)
    missing = tmp_path / "x.toml"
    missing.write_text('exclude = ["nope"]\n')
    with pytest.raises(ConfigError, match="exclude names 'nope'"):
        load_space_file(missing)


def test_params_apply_to_fields_and_factory_options() -> None:
    cfg = RunConfig(arch="resnet18", dataset="digits", model={"drop_rate": 0.1})
    out = apply_params(cfg, {"lr": 0.01, "batch_size": 64, "model.drop_path_rate": 0.2})
    assert (out.lr, out.batch_size) == (0.01, 64)
    assert out.model == {"drop_rate": 0.1, "drop_path_rate": 0.2}
    assert cfg.model == {"drop_rate": 0.1}  # the base config is left alone
    with pytest.raises(ConfigError, match="batch_size"):
        apply_params(cfg, {"batch_size": 0})


def test_grid_values() -> None:
    space = SearchSpace.parse({"a": {"type": "categorical", "choices": [1, 2]},
                               "b": {"type": "int", "low": 1, "high": 5, "step": 2},
                               "c": {"type": "float", "low": 1e-3, "high": 1e-1, "log": True},
                               "d": {"type": "float", "low": 0.0, "high": 0.2, "step": 0.1}})
    grid = space.grid(points=3)
    assert grid["a"] == [1, 2] and grid["b"] == [1, 3, 5]
    assert grid["c"] == pytest.approx([1e-3, 1e-2, 1e-1])
    assert grid["d"] == pytest.approx([0.0, 0.1, 0.2])
    assert space.grid_size(points=3) == 2 * 3 * 3 * 3 == len(list(space.grid_points(points=3)))
    assert next(space.grid_points(points=3)) == {"a": 1, "b": 1, "c": pytest.approx(1e-3), "d": 0.0}


def test_one_space_type_gives_optuna_distributions_and_sagemaker_ranges() -> None:
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    space = SearchSpace.parse({"lr": {"type": "float", "low": 1e-4, "high": 0.1, "log": True},
                               "layers": {"type": "int", "low": 1, "high": 3},
                               "batch_size": {"type": "categorical", "choices": (16, 32)}})
    dists = space.to_optuna()
    assert dists["lr"] == FloatDistribution(1e-4, 0.1, log=True)
    assert dists["layers"] == IntDistribution(1, 3)
    assert dists["batch_size"] == CategoricalDistribution([16, 32])
    assert space.to_sagemaker() == {
        "lr": {"kind": "Continuous", "min": 1e-4, "max": 0.1, "scaling": "Logarithmic"},
        "layers": {"kind": "Integer", "min": 1, "max": 3, "scaling": "Linear"},
        "batch_size": {"kind": "Categorical", "values": [16, 32]},
    }
    with pytest.raises(ValueError, match="grid strategy needs lists"):
        space.to_sagemaker(grid=True)
    assert SearchSpace.parse(space.to_dict()) == space  # JSON and back


@pytest.mark.parametrize("spec", [
    {"type": "categorical", "choices": [8, 16]},
    {"type": "categorical", "choices": (8, 16)},  # an entry given in Python may use a tuple
])
def test_entries_and_space_files_accept_the_same_choices(spec: dict[str, object]) -> None:
    """One validation: what an entry may declare, a space file may give, and the other way round."""
    entry = bestiary.Entry("spaced", "architectures", "toyzoo:toy_mlp", search_space={"batch_size": spec})
    assert check_space(entry.search_space)["batch_size"].choices == (8, 16)


@pytest.mark.parametrize(("spec", "message"), [
    ({"type": "float", "low": 1.0, "high": 0.5}, "low < high"),
    ({"type": "int", "low": 1, "high": 4.5}, "whole numbers"),
    ({"type": "float", "low": 0.0, "high": 1.0, "step": -0.1}, "step must be a positive number"),
    ({"type": "float", "low": "0", "high": 1.0}, "both numbers"),
    ({"type": "categorical", "choices": []}, "non-empty list"),
    ({"type": "normal"}, "type float, int or categorical"),
])
def test_entries_and_space_files_refuse_the_same_ranges(spec: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidEntryError, match=message):
        bestiary.Entry("spaced", "architectures", "toyzoo:toy_mlp", search_space={"lr": spec})
    with pytest.raises(ConfigError, match=message):
        check_space({"lr": spec})


@pytest.mark.parametrize(("text", "seconds"), [("90", 90), ("45s", 45), ("5m", 300), ("1h30m", 5400), (2.5, 2.5)])
def test_durations(text: str | float, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "5 minutes", "m5", "10x", "0", "5m3"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(ConfigError, match="duration"):
        parse_duration(text)


def test_configs_are_written_as_toml_that_loads_back(tmp_path: Path) -> None:
    cfg = RunConfig(arch="resnet18", dataset="digits", lr=0.003, metrics=["accuracy", "f1_macro"],
                    model={"drop_path_rate": 0.1, "name with space": "x"}, strategy_options={})
    text = to_toml({k: v for k, v in cfg.to_dict().items() if k != "run_dir"})
    path = tmp_path / "c.toml"
    path.write_text(text)
    assert RunConfig.load(path) == cfg
    assert tomllib.loads(text)["model"]["name with space"] == "x"
