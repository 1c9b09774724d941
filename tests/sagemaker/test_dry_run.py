"""``--dry-run``, option checks and the search-space conversion: no SDK, no AWS, no upload."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from smkit import ENGINE_TESTS, IMAGE, ROLE, toy_host

from bestiary.cli import main
from bestiary.errors import ConfigError
from bestiary.plugins.launchers.sagemaker.tuning import Study, ranges

SAGEMAKER = ["--launcher", "sagemaker", "--role", ROLE, "--image", IMAGE, "--region", "eu-west-1"]

PROBE = """
import json, sys
from bestiary.cli import main
try:
    main(sys.argv[1:], standalone_mode=True)
except SystemExit as exc:
    code = exc.code
heavy = sorted({m.split(".")[0] for m in sys.modules} & {"sagemaker", "boto3", "botocore", "moto"})
print("PROBE=" + json.dumps({"code": code, "heavy": heavy}))
"""


def _probe(*args: str) -> tuple[dict[str, object], str]:
    env = {"PYTHONPATH": str(ENGINE_TESTS), "BESTIARY_PLUGINS": "toyzoo", "PATH": "/usr/bin:/bin",
           "HOME": "/nonexistent", "AWS_CONFIG_FILE": "/nonexistent", "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent"}
    done = subprocess.run([sys.executable, "-c", PROBE, *args], env=env, capture_output=True, text=True, timeout=120,
                          check=False)
    line = [ln for ln in done.stdout.splitlines() if ln.startswith("PROBE=")]
    assert line, done.stdout[-2000:] + done.stderr[-2000:]
    return json.loads(line[0][len("PROBE="):]), done.stdout


@pytest.mark.slow
def test_dry_run_prints_the_request_without_the_sdk() -> None:
    result, out = _probe("train", "toy_mlp", "--dataset", "blobs", "--strategy", "ddp", *SAGEMAKER,
                         "--instance-type", "ml.g5.12xlarge", "--instance-count", "2", "--spot", "--max-run", "3h",
                         "--input-s3", "s3://bucket/blobs", "--json", "--dry-run")
    assert result == {"code": 0, "heavy": []}  # the SDK, boto3 and the emulator stay unloaded
    plan = json.loads(out[: out.index("PROBE=")])
    assert plan["image"] == IMAGE and plan["region"] == "eu-west-1" and plan["role"] == ROLE
    assert plan["compute"] == {"instance_type": "ml.g5.12xlarge", "instance_count": 2, "spot": True,
                               "volume_gb": None, "keep_alive_s": None}
    assert plan["distribution"] == {"type": "torchrun", "process_count_per_node": 4, "nodes": 2}  # 4 GPUs each
    assert plan["channels"] == {"training": "s3://bucket/blobs"}
    assert plan["stopping"] == {"max_run_s": 10800, "max_wait_s": 21600}
    assert plan["config"]["arch"] == "toy_mlp" and plan["config"]["strategy"] == "ddp"
    assert plan["config"]["options"] == {"sagemaker": {"role": ROLE, "spot": True,
                                                       "input_s3": ["s3://bucket/blobs"]}}  # the plugin's table
    assert plan["estimated_cost_usd"]["max_usd"] == pytest.approx(2 * 7.09 * 3)
    listed, _ = _probe("list", "launchers")
    assert listed == {"code": 0, "heavy": []}


def test_dry_run_text_and_option_errors() -> None:
    runner = CliRunner()
    with toy_host():
        text = runner.invoke(main, ["train", "toy_mlp", "--dataset", "blobs", *SAGEMAKER, "--dry-run"])
        assert text.exit_code == 0, text.output
        assert "nothing was started or uploaded; estimated cost at most 5.52 USD (1 job(s) x 1 x 0.23 USD/h x 24 h" \
            in text.output  # ml.m5.xlarge, one day: the defaults
        cases = {
            ("--instance-type", "ml.g5.xlarge"): "launcher 'local' does not use --instance-type; they are for "
                                                 "launchers that rent machines",
            ("--role", ROLE, "--spot"): "launcher 'local' does not use the options sagemaker.role, sagemaker.spot; "
                                        "they are for --launcher sagemaker",
            ("--launcher", "sagemaker", "--image", IMAGE, "--role", ROLE, "--region", "us-east-1",
             "--instance-type", "ml.g5.12xlarge"): "strategy 'single' runs in one process",
            ("--launcher", "sagemaker", "--image", IMAGE, "--region", "us-east-1"): "pass --role",
            ("--launcher", "sagemaker", "--image", IMAGE, "--role", ROLE, "--region", "us-east-1",
             "--instance-type", "g5.xlarge"): "is not a SageMaker instance type",
            ("--launcher", "sagemaker", "--image", IMAGE, "--role", ROLE, "--region", "us-east-1",
             "--max-wait", "2h"): "--max-wait applies to spot jobs only",
            ("--launcher", "sagemaker", "--image", IMAGE, "--role", ROLE, "--region", "us-east-1", "--spot",
             "--max-run", "3h", "--max-wait", "1h"): "must be at least --max-run",
            ("--launcher", "sagemakr"): "Did you mean",
            ("--launcher", "sagemaker", "--image", IMAGE, "--role", ROLE, "--region", "us-east-1",
             "--max-run", "soon"): "--max-run expects a duration",
        }
        for args, message in cases.items():
            done = runner.invoke(main, ["train", "toy_mlp", "--dataset", "blobs", *args, "--dry-run"])
            assert done.exit_code == 2, (args, done.output)
            assert message in done.output, (args, done.output)


def test_search_space_becomes_sagemaker_ranges() -> None:
    space = {"lr": {"type": "float", "low": 1e-4, "high": 0.1, "log": True},
             "model.depth": {"type": "int", "low": 2, "high": 8},
             "model.width": {"type": "int", "low": 16, "high": 64, "step": 16},
             "optimizer": {"type": "categorical", "choices": ["adamw", "sgd"]}}
    assert ranges(space) == {
        "lr": {"kind": "Continuous", "min": 1e-4, "max": 0.1, "scaling": "Logarithmic"},
        "model.depth": {"kind": "Integer", "min": 2, "max": 8, "scaling": "Linear"},
        "model.width": {"kind": "Categorical", "values": [16, 32, 48, 64]},
        "optimizer": {"kind": "Categorical", "values": ["adamw", "sgd"]},
    }
    with pytest.raises(ConfigError, match="grid strategy needs lists of values, but 'lr'"):
        ranges(space, grid=True)
    grid = ranges({k: v for k, v in space.items() if k != "lr"}, grid=True)
    assert grid["model.depth"] == {"kind": "Categorical", "values": [2, 3, 4, 5, 6, 7, 8]}
    with pytest.raises(ConfigError, match="a list may hold 30"):
        ranges({"n": {"type": "int", "low": 1, "high": 100, "step": 2}})
    with pytest.raises(ConfigError, match="stops trials itself"):
        Study(space=space, strategy="hyperband", early_stopping=True).validate()
    with pytest.raises(ConfigError, match="not one of bayesian, random, hyperband, grid"):
        Study(space=space, strategy="tpe").validate()
    with pytest.raises(ConfigError, match="search space is empty"):
        Study(space={}).validate()


def test_jobs_submit_plans_any_bestiary_command() -> None:
    runner = CliRunner()
    with toy_host():
        done = runner.invoke(main, ["jobs", "submit", "--role", ROLE, "--image", IMAGE, "--region", "us-east-1",
                                    "--json", "--dry-run", "--", "bench", "run", "throughput-gpu", "--repeats", "1"])
        assert done.exit_code == 0, done.output
        plan = json.loads(done.output)
        assert plan["kind"] == "command" and plan["config"] is None
        assert plan["entry"].endswith("bestiary bench run throughput-gpu --repeats 1 (in the checkpoint folder)")
        assert plan["distribution"] == {"type": "single process"}
        wrong = runner.invoke(main, ["jobs", "submit", "--role", ROLE, "--dry-run", "--", "bnech", "run"])
        assert wrong.exit_code == 2 and "Did you mean: bench" in wrong.output


def test_tune_command_plans_a_sagemaker_tuning_job(tmp_path: Path) -> None:
    space = tmp_path / "space.toml"
    space.write_text('[batch_size]\ntype = "categorical"\nchoices = [8, 16]\n\n'
                     '["model.hidden"]\ntype = "int"\nlow = 8\nhigh = 32\nstep = 8\n')
    runner = CliRunner()
    with toy_host():
        done = runner.invoke(main, ["tune", "toy_mlp", "--dataset", "blobs", "--strategy", "ddp", "--epochs", "3",
                                    *SAGEMAKER, "--instance-type", "ml.g5.12xlarge", "--trials", "6", "--n-jobs", "2",
                                    "--pruner", "hyperband", "--sampler-seed", "3", "--launch-option",
                                    "warm_start=study-a,study-b", "--json", "--dry-run"])
        assert done.exit_code == 0, done.output
        tuning = json.loads(done.output)["tuning"]
        assert tuning["strategy"] == "Hyperband" and tuning["early_stopping"] == "Off"
        assert tuning["hyperband"] == {"min_resource": 1, "max_resource": 3}  # epochs are the resource
        assert tuning["objective"] == {"metric": "validation:accuracy", "type": "Maximize"}
        assert tuning["ranges"] == {"lr": {"kind": "Continuous", "min": 1e-4, "max": 0.1, "scaling": "Logarithmic"}}
        assert (tuning["max_jobs"], tuning["max_parallel_jobs"], tuning["random_seed"]) == (6, 2, 3)
        assert tuning["warm_start"] == {"parents": ["study-a", "study-b"], "type": "IdenticalDataAndAlgorithm"}
        assert tuning["static_hyperparameters"] == {"sagemaker_torch_distributed_enabled": "true",
                                                    "sagemaker_mpi_num_of_processes_per_host": "4"}
        grid = runner.invoke(main, ["tune", "toy_mlp", "--dataset", "blobs", *SAGEMAKER, "--space", str(space),
                                    "--sampler", "grid", "--metric", "loss", "--json", "--dry-run"])
        assert grid.exit_code == 0, grid.output
        plan = json.loads(grid.output)
        assert plan["tuning"]["strategy"] == "Grid" and plan["tuning"]["max_jobs"] == 8  # 2 x 4 points
        assert plan["tuning"]["objective"] == {"metric": "validation:loss", "type": "Minimize"}
        assert plan["estimated_cost_usd"]["jobs"] == 8
        local = runner.invoke(main, ["tune", "toy_mlp", "--dataset", "blobs", "--instance-type", "ml.g5.xlarge"])
        assert local.exit_code == 2 and "--instance-type apply to remote launchers" in local.output
        local = runner.invoke(main, ["tune", "toy_mlp", "--dataset", "blobs", "--spot"])
        assert local.exit_code == 2 and "--spot apply to remote launchers" in local.output
        several = runner.invoke(main, ["tune", "toy_mlp", "--dataset", "blobs", *SAGEMAKER, "--metric", "accuracy",
                                       "--metric", "loss", "--dry-run"])
        assert several.exit_code == 2 and "optimises one metric" in several.output
