"""A metric's direction: declared by its entry, read by one lookup, so a plugin's lower-is-better
metric ranks the same in a run, a study, a benchmark and ``runs compare``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import bestiary
from bestiary.benchmarks.quality import mode_of
from bestiary.benchmarks.runner import direction
from bestiary.engine.compare import metric_mode
from bestiary.engine.config import RunConfig
from bestiary.engine.metrics import monitor_mode
from bestiary.errors import ConfigError
from bestiary.registry import metric_direction
from bestiary.tune.study import objectives_for


def wrongness() -> Any:
    """Share of wrong top-1 predictions: lower is better, and its name does not say so."""
    import torch

    from bestiary.engine.metrics import Metric

    class Wrongness(Metric):
        higher_is_better = False

        def stats(self, outputs: torch.Tensor, batch: Any) -> torch.Tensor:
            wrong = (outputs.argmax(-1) != batch[1]).sum().double()
            return torch.stack([wrong, torch.tensor(float(batch[1].numel()), dtype=torch.float64)])

        def value(self, total: torch.Tensor) -> float:
            return float(total[0] / total[1])

    return Wrongness()


class Scores:
    @staticmethod
    @bestiary.hookimpl
    def register_metrics(register):  # type: ignore[no-untyped-def]
        register("wrongness", wrongness, task="image-classification", metadata={"higher_is_better": False})
        register("histogram", wrongness, task="image-classification", metadata={"higher_is_better": None})


@pytest.fixture
def scored(toy_host: bestiary.PluginHost) -> bestiary.PluginHost:
    assert toy_host.add_plugin(Scores(), "scores").status == "ok"
    return toy_host


def test_a_lower_is_better_plugin_metric_ranks_the_same_everywhere(scored: bestiary.PluginHost) -> None:
    assert metric_direction("wrongness", scored) == "min"
    config = RunConfig(arch="toy_mlp", dataset="blobs", metrics=["accuracy", "wrongness"])
    assert monitor_mode("wrongness", [scored.registry.table("metrics").get("wrongness")]) == "min"  # trainer
    assert [o.direction for o in objectives_for(config, "wrongness", None, scored)] == ["minimize"]  # tune
    assert direction("wrongness") == "lower" and mode_of("wrongness", "max", "accuracy") == "min"  # bench
    assert metric_mode("wrongness", []) == "min"  # runs compare, for a metric no run monitored
    # accuracy stays higher-is-better everywhere
    assert (metric_mode("accuracy", []), direction("accuracy"), monitor_mode("loss", [])) == ("max", "higher", "min")


def test_a_run_monitoring_it_keeps_the_lowest_value(scored: bestiary.PluginHost, tmp_path: Path) -> None:
    from bestiary.engine.trainer import Trainer

    config = RunConfig(arch="toy_mlp", dataset="blobs", metrics=["wrongness"], monitor="wrongness", epochs=3,
                       batch_size=32, device="cpu", run_dir=str(tmp_path / "run"), quiet=True)
    summary = Trainer(config).run()
    assert summary["best"]["mode"] == "min"
    assert summary["best"]["value"] == min(r["wrongness"] for r in _validation(tmp_path / "run"))


def _validation(run_dir: Path) -> list[dict[str, Any]]:
    import json

    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [r for r in rows if r.get("split") == "validation"]


def test_a_value_that_is_no_score_is_never_ranked(scored: bestiary.PluginHost) -> None:
    assert metric_direction("histogram", scored) is None
    assert direction("histogram") is None  # shown, never judged
    with pytest.raises(ConfigError, match="no score to monitor"):
        monitor_mode("histogram", [scored.registry.table("metrics").get("histogram")])
    config = RunConfig(arch="toy_mlp", dataset="blobs")
    with pytest.raises(ConfigError, match="no score to optimise"):
        objectives_for(config, "histogram", None, scored)
    assert [o.direction for o in objectives_for(config, "histogram", "min", scored)] == ["minimize"]


def test_a_metric_without_a_direction_fails_its_plugin(toy_host: bestiary.PluginHost) -> None:
    class Undecided:
        @staticmethod
        @bestiary.hookimpl
        def register_metrics(register):  # type: ignore[no-untyped-def]
            register("undecided", wrongness, task="image-classification")

    info = toy_host.add_plugin(Undecided(), "undecided")
    assert info.status == "failed"
    assert "metric 'undecided' declares no direction" in str(info.error)
    assert "metadata={'higher_is_better': True}" in str(info.error)
