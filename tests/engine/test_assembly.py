"""One run assembly for training, evaluation and prediction; errors that name their cause."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

import bestiary
from bestiary import hookimpl
from bestiary.engine.config import RunConfig
from bestiary.engine.evaluate import evaluate_run
from bestiary.engine.trainer import train
from bestiary.registry import UnknownEntryError

HERE = Path(__file__).parent


@pytest.fixture
def trained(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):  # type: ignore[no-untyped-def]
    monkeypatch.syspath_prepend(str(HERE))
    import toyzoo

    host = bestiary.reset_host(bestiary.PluginHost(autoload=False))
    host.add_plugin(toyzoo, "toyzoo")
    summary = train(RunConfig(arch="toy_mlp", dataset="blobs", epochs=1, batch_size=16, quiet=True,
                              run_dir=str(tmp_path / "run")), host=host)
    yield Path(summary["run_dir"])
    bestiary.reset_host()


class BrokenToyzoo:
    """The toyzoo plugin after an upgrade that broke it: its registration raises."""

    @hookimpl
    def register_datasets(self, register: Any) -> None:
        raise RuntimeError("blobs moved to another module")


def test_evaluate_and_predict_share_the_training_assembly(trained: Path, tmp_path: Path) -> None:
    first = evaluate_run(trained, split="validation")
    again = evaluate_run(trained, split="validation")
    assert first["loss"] == again["loss"] and first["dataset"] == "toyzoo:blobs"

    final = json.loads((trained / "summary.json").read_text())["final"]
    # the trained model on the validation split measures as the run's own last validation did
    assert first["loss"] == pytest.approx(final["loss"], rel=1e-5)


def test_evaluating_a_run_whose_plugin_broke_names_the_plugin(trained: Path) -> None:
    host = bestiary.reset_host(bestiary.PluginHost(autoload=False))
    assert host.add_plugin(BrokenToyzoo(), "toyzoo").status == "failed"
    with pytest.raises(UnknownEntryError) as caught:
        evaluate_run(trained, split="validation")
    message = str(caught.value)
    assert "unknown dataset 'toyzoo:blobs'" in message
    assert "plugin 'toyzoo' (local 0), which failed to load" in message
    assert "blobs moved to another module" in message and "`bestiary plugins`" in message

    from click.testing import CliRunner

    from bestiary.cli import main

    result = CliRunner().invoke(main, ["evaluate", str(trained), "--split", "validation"])
    assert result.exit_code != 0
    assert "plugin 'toyzoo' (local 0), which failed to load" in result.output


def test_an_unknown_name_with_every_plugin_loaded_says_nothing_more(trained: Path) -> None:
    host = bestiary.reset_host(bestiary.PluginHost(autoload=False))
    assert all(p.status != "failed" for p in host.plugins)
    with pytest.raises(UnknownEntryError) as caught:
        evaluate_run(trained, split="validation")
    assert "failed to load" not in str(caught.value)
