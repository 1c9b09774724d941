"""The example third-party plugin (tests/plugins/bestiary-example), loaded through its entry point.

Its package metadata is written from its own pyproject.toml, so the host sees what a pip install
shows without running pip (the slow integration tests run pip). Building needs torch.
"""

from __future__ import annotations

import sys
import tomllib

import pytest
from bestiary_testing import EXAMPLE_DIR, by_name, make_host, write_dist

import bestiary

PROJECT = tomllib.loads((EXAMPLE_DIR / "pyproject.toml").read_text())["project"]
TASK = "tabular-classification"


@pytest.fixture
def host(site, monkeypatch) -> bestiary.PluginHost:
    write_dist(site, PROJECT["name"], PROJECT["version"], PROJECT["entry-points"]["bestiary"])
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.syspath_prepend(str(EXAMPLE_DIR))
    return bestiary.reset_host(make_host(autoload=True))


def test_package_metadata():
    assert (PROJECT["name"], PROJECT["version"]) == ("bestiary-example", "0.3.1")
    assert PROJECT["entry-points"]["bestiary"] == {"example": "bestiary_example.plugin"}


def test_registers_one_entry_of_each_kind(host):
    info = by_name(host.plugins)["example"]
    assert (info.status, info.source, info.distribution, info.version) == (
        "ok",
        "entrypoint",
        "bestiary-example",
        "0.3.1",
    )
    assert info.entries == {"architectures": 1, "datasets": 1, "metrics": 1, "strategies": 1}
    assert [e.qualified_name for e in bestiary.list_entries(plugin="example")] == [
        "example:tiny_mlp",
        "example:synthetic_blobs",
        "example:accuracy",
        "example:local",
    ]
    for entry in bestiary.list_entries(plugin="example"):
        assert entry.provenance == bestiary.Provenance("example", "bestiary-example", "0.3.1")
        assert entry.description
        assert entry.task == (None if entry.kind == "strategies" else TASK)
        assert isinstance(entry.factory, str) and entry.factory.startswith("bestiary_example.")


def test_registering_imports_no_factory_module(host):
    host.load()
    assert "bestiary_example.plugin" in sys.modules
    loaded = {m for m in sys.modules if m.startswith("bestiary_example.")}
    assert loaded == {"bestiary_example.plugin"}


def test_entry_metadata(host):
    mlp = bestiary.get_entry("architecture", "example:tiny_mlp")
    assert dict(mlp.defaults) == {"in_features": 8, "hidden": 16, "num_classes": 3}
    assert mlp.search_space == {"model.hidden": {"type": "categorical", "choices": [8, 16, 32, 64]}}
    assert mlp.tags == ("mlp", "tiny")
    assert bestiary.get_entry("metrics", "example:accuracy").metadata == {"higher_is_better": True}
    assert bestiary.get_entry("strategy", "example:local").metadata["min_world_size"] == 1


# -- what the factories build --------------------------------------------------------------------


def test_accuracy_accumulates_over_batches(host):
    metric = bestiary.build("metrics", "example:accuracy")
    scores = [[0.9, 0.1, 0.0], [0.2, 0.7, 0.1], [0.3, 0.3, 0.4], [0.5, 0.4, 0.1]]
    targets = [0, 1, 1, 1]
    metric.update(scores[:1], targets[:1])
    metric.update(scores[1:], targets[1:])
    whole = bestiary.build("metrics", "example:accuracy")
    whole.update(scores, targets)
    assert metric.compute() == whole.compute() == 0.5
    metric.update([2, 2], [2, 0])  # labels instead of scores
    assert metric.compute() == pytest.approx(3 / 6)
    metric.reset()
    with pytest.raises(ValueError, match="no samples yet"):
        metric.compute()
    with pytest.raises(ValueError, match="2 predictions for 1 targets"):
        metric.update([0, 1], [0])


def test_local_strategy(host):
    strategy = bestiary.build("strategies", "example:local")
    assert (strategy.device, strategy.rank, strategy.world_size) == ("cpu", 0, 1)
    assert strategy.reduce(3.5) == 3.5


def test_mlp_and_blobs_train_together(host):
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)

    data = bestiary.build("datasets", "example:synthetic_blobs", num_samples=200, num_features=4)
    again = bestiary.build("datasets", "example:synthetic_blobs", num_samples=200, num_features=4)
    other = bestiary.build("datasets", "example:synthetic_blobs", num_samples=200, num_features=4, seed=1)
    assert data.info == {"num_features": 4, "num_classes": 3}
    assert (len(data.train), len(data.test)) == (150, 50)
    assert torch.equal(data.train.tensors[0], again.train.tensors[0])
    assert not torch.equal(data.train.tensors[0], other.train.tensors[0])
    x, y = data.train.tensors
    assert x.shape == (150, 4) and x.dtype == torch.float32
    assert y.dtype == torch.int64 and set(y.tolist()) <= {0, 1, 2}

    strategy = bestiary.build("strategies", "example:local")
    model = strategy.prepare_model(
        bestiary.build("architectures", "example:tiny_mlp", in_features=4, hidden=32)
    )
    assert model(x[:5]).shape == (5, 3)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.05)
    for _ in range(30):
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        optimizer.step()

    metric = bestiary.build("metrics", "example:accuracy")
    test_x, test_y = data.test.tensors
    with torch.no_grad():
        for start in range(0, len(test_y), 16):
            metric.update(model(test_x[start : start + 16]), test_y[start : start + 16])
    assert metric.total == 50
    assert metric.compute() > 0.9
