"""Config strings with any characters survive the TOML file a torchrun launch or a SageMaker job
reads: emoji (outside the Basic Multilingual Plane), quotes, backslashes, control characters."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import pytest
from test_ddp import ARGS, bestiary_cli, env, finish

from bestiary.engine.config import RunConfig
from bestiary.engine.torchrun import to_toml, toml_string
from bestiary.errors import ConfigError

TEXTS = ["run-🦄", "😀 smile", 'say "hi"', "C:\\data\\set", "tab\there", "line\nbreak\r\n", "bell\x07\x00\x1f\x7f",
         "é ü ß 中文", "\u2028\ufeff", "\U0010ffff", "'single' and \"\"\"triple\"\"\"", ""]


@pytest.mark.parametrize("text", TEXTS)
def test_every_string_round_trips_through_toml(text: str) -> None:
    assert tomllib.loads(f"x = {toml_string(text)}")["x"] == text
    cfg = RunConfig(arch="toy_mlp", dataset="blobs", run_dir=text or None, runs_root=text or "runs",
                    model={text: text, "list": [text, "plain"]}, data={"root": text, "nested": {"k": text}})
    written = to_toml(cfg)
    assert written.isascii()  # the file reads the same whatever encoding wrote it
    assert RunConfig.from_dict(tomllib.loads(written)) == cfg


def test_a_lone_surrogate_is_a_config_error_naming_the_value() -> None:
    with pytest.raises(ConfigError, match="not valid Unicode"):
        toml_string("bad\udcff")


def test_sagemaker_staging_writes_a_config_the_container_reads(tmp_path: Path) -> None:
    from bestiary.plugins.launchers.sagemaker.container import CONFIG_FILE
    from bestiary.plugins.launchers.sagemaker.staging import stage

    cfg = RunConfig(arch="toy_mlp", dataset="blobs", data={"root": "/opt/ml/input/data/🦄 \"q\" \\"},
                    runs_root="runs-😀")
    stage(tmp_path / "code", cfg, {"nproc_per_node": 1, "instance_count": 1, "rdzv_port": 29400}, source="installed")
    assert RunConfig.load(tmp_path / "code" / CONFIG_FILE) == cfg


@pytest.mark.slow
def test_ddp_launch_with_an_emoji_in_the_run_directory(tmp_path: Path) -> None:
    run_dir = tmp_path / "ddp-🦄 \"quoted\""
    finish(bestiary_cli(*ARGS, "--nproc-per-node", "2", "--run-dir", str(run_dir), env=env()))
    summary = json.loads((run_dir / "summary.json").read_text(encoding="utf-8"))
    assert summary["status"] == "completed"
    assert json.loads((run_dir / "config.json").read_text(encoding="utf-8"))["resolved"]["world_size"] == 2
