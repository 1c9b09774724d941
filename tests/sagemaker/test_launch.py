"""The launch path against an AWS emulator (moto, in this process): the CreateTrainingJob and
CreateHyperParameterTuningJob requests, the uploaded code, the jobs record and ``bestiary jobs``."""

from __future__ import annotations

import json
import re
import tarfile
import time
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from smkit import IMAGE, REGION, ROLE, download_prefix, toy_host

from bestiary.engine.config import RunConfig
from bestiary.launch import Job, LaunchOptions, get_launcher
from bestiary.plugins.launchers.sagemaker.tuning import Study

pytestmark = pytest.mark.slow  # the SDK takes seconds to import and each job uploads its code

TOY = RunConfig(arch="toy_mlp", dataset="blobs", strategy="ddp", epochs=2, batch_size=16, checkpoint_every=5)
SPACE = {"lr": {"type": "float", "low": 1e-3, "high": 0.1, "log": True},
         "batch_size": {"type": "categorical", "choices": [8, 16]},
         "model.hidden": {"type": "int", "low": 8, "high": 32, "step": 8}}


#: The sagemaker plugin's own settings ([options.sagemaker]); given to the launcher as extra.
SETTINGS = ("role", "spot", "max_wait", "checkpoint_s3", "output_s3", "input_s3", "keep_alive", "volume_gb")


def _options(**changes: Any) -> LaunchOptions:
    base: dict[str, Any] = {
        "instance_type": "ml.c5.xlarge", "instance_count": 2, "nproc_per_node": 2, "role": ROLE, "image": IMAGE,
        "region": REGION, "spot": True, "max_run": 3600, "max_wait": 7200, "checkpoint_s3": "s3://bestiary-data/ckpt",
        "output_s3": "s3://bestiary-data/out", "input_s3": ["training=s3://bestiary-data/blobs"], "wait": False,
        "tags": (("team", "vision"),)}
    base.update(changes)
    extra = {k: base.pop(k) for k in SETTINGS if k in base}
    return LaunchOptions(**base, extra={k: v for k, v in extra.items() if v is not None})


@pytest.fixture(scope="module")
def train_job(aws: dict[str, Any]) -> dict[str, Any]:
    import boto3

    with toy_host():
        job = Job("train", _options(), config=TOY)
        launcher = get_launcher("sagemaker")
        plan = launcher.plan(job)
        result = launcher.launch(job)
    sm = boto3.client("sagemaker", region_name=REGION)
    described = sm.describe_training_job(TrainingJobName=result.job_name)
    return {"plan": plan, "result": result, "described": described, "aws": aws}


def test_training_job_request_matches_the_dry_run(train_job: dict[str, Any]) -> None:
    plan, d = train_job["plan"], train_job["described"]
    assert train_job["result"].job_name.startswith("bestiary-toy_mlp-blobs-".replace("_", "-"))
    assert d["AlgorithmSpecification"]["TrainingImage"] == plan["image"] == IMAGE
    assert d["RoleArn"] == ROLE
    assert d["ResourceConfig"]["InstanceType"] == "ml.c5.xlarge" and d["ResourceConfig"]["InstanceCount"] == 2
    assert d["EnableManagedSpotTraining"] is True
    assert d["StoppingCondition"] == {"MaxRuntimeInSeconds": 3600, "MaxWaitTimeInSeconds": 7200}
    assert d["CheckpointConfig"] == {"S3Uri": "s3://bestiary-data/ckpt", "LocalPath": "/opt/ml/checkpoints"}
    assert d["OutputDataConfig"]["S3OutputPath"] == "s3://bestiary-data/out"
    channels = {c["ChannelName"]: c["DataSource"]["S3DataSource"]["S3Uri"] for c in d["InputDataConfig"]}
    assert channels["training"] == plan["channels"]["training"] == "s3://bestiary-data/blobs"
    assert {"code", "sm_drivers"} <= set(channels)
    assert d["HyperParameters"] == plan["hyperparameters"] == {}
    # the SDK's driver runs torchrun: the container's entrypoint is its script, not the image's
    assert d["AlgorithmSpecification"]["ContainerEntrypoint"] == ["/bin/bash"]
    assert plan["distribution"] == {"type": "torchrun", "process_count_per_node": 2, "nodes": 2}
    cost = plan["estimated_cost_usd"]
    assert cost["max_usd"] == pytest.approx(2 * 0.204 * 1.0, abs=0.01) and "us-east-1" in cost["source"]


def test_uploaded_code_runs_bestiary_train_with_the_config(train_job: dict[str, Any], tmp_path: Path) -> None:
    channels = {c["ChannelName"]: c["DataSource"]["S3DataSource"]["S3Uri"]
                for c in train_job["described"]["InputDataConfig"]}
    code = download_prefix(channels["code"], tmp_path / "code")
    drivers = download_prefix(channels["sm_drivers"], tmp_path / "drivers")
    config = RunConfig.load(code / "bestiary_config.toml")
    assert config == TOY.replace(data={})
    job = json.loads((code / "bestiary_job.json").read_text())
    assert job["format"] == "bestiary-job/1" and job["nproc_per_node"] == 2 and job["instance_count"] == 2
    assert "bestiary.plugins.launchers.sagemaker.container import main" in (code / "bestiary_entry.py").read_text()
    assert (code / "bestiary" / "plugins" / "launchers" / "sagemaker" / "container.py").exists()  # this installation
    assert (code / "bestiary" / "plugins" / "launchers" / "__init__.py").exists()
    assert not list(code.rglob("__pycache__"))
    requirements = (code / "requirements.txt").read_text().split()
    assert any(r.startswith("pluggy") for r in requirements) and not any(r.startswith("torch") for r in requirements)
    distributed = json.loads((drivers / "distributed.json").read_text())
    assert distributed["process_count_per_node"] == 2
    script = (drivers / "sm_train.sh").read_text()
    assert "torchrun_driver.py" in script and "requirements.txt" in script
    source = json.loads((drivers / "sourcecode.json").read_text())
    assert source["entry_script"] == "bestiary_entry.py"


def test_jobs_commands_list_show_and_log(train_job: dict[str, Any]) -> None:
    import boto3

    from bestiary.cli import main

    name = train_job["result"].job_name
    logs = boto3.client("logs", region_name=REGION)
    group = "/aws/sagemaker/TrainingJobs"
    try:
        logs.create_log_group(logGroupName=group)
    except logs.exceptions.ResourceAlreadyExistsException:
        pass
    now = int(time.time() * 1000)  # CloudWatch drops events older than 14 days
    stream = f"{name}/algo-1-{now // 1000}"
    logs.create_log_stream(logGroupName=group, logStreamName=stream)
    logs.put_log_events(logGroupName=group, logStreamName=stream, logEvents=[
        {"timestamp": now + i, "message": f"[bestiary] step={i} train:loss=0.5"} for i in range(3)])
    runner = CliRunner()
    listed = runner.invoke(main, ["jobs", "list", "--json"])
    assert listed.exit_code == 0, listed.output
    assert name in [j["name"] for j in json.loads(listed.output)]
    shown = runner.invoke(main, ["jobs", "show", name, "--json"])
    assert shown.exit_code == 0, shown.output
    facts = json.loads(shown.output)
    assert facts["status"] == "Completed" and facts["instance_type"] == "ml.c5.xlarge" and facts["spot"] is True
    logged = runner.invoke(main, ["jobs", "logs", name])
    assert logged.exit_code == 0 and "[bestiary] step=2 train:loss=0.5" in logged.output
    unknown = runner.invoke(main, ["jobs", "show", name[:-1] + "x"])
    assert unknown.exit_code == 2 and "Did you mean" in unknown.output


@pytest.fixture(scope="module")
def tuning_job(aws: dict[str, Any]) -> dict[str, Any]:
    import boto3

    study = Study(space=SPACE, objective="validation:accuracy", strategy="bayesian", max_jobs=4,
                  max_parallel_jobs=2, early_stopping=True, warm_start=("bestiary-earlier-study",),
                  warm_start_type="transfer", seed=7)
    with toy_host():
        job = Job("tune", _options(instance_count=1, spot=False, max_wait=None, tags=()), config=TOY, study=study)
        launcher = get_launcher("sagemaker")
        plan = launcher.plan(job)
        result = launcher.launch(job)
    sm = boto3.client("sagemaker", region_name=REGION)
    described = sm.describe_hyper_parameter_tuning_job(HyperParameterTuningJobName=result.job_name)
    return {"plan": plan, "result": result, "described": described}


def test_tuning_job_request(tuning_job: dict[str, Any]) -> None:
    d, plan = tuning_job["described"], tuning_job["plan"]
    assert len(tuning_job["result"].job_name) <= 32
    cfg = d["HyperParameterTuningJobConfig"]
    assert cfg["Strategy"] == "Bayesian" and cfg["TrainingJobEarlyStoppingType"] == "Auto"
    assert cfg["HyperParameterTuningJobObjective"] == {"Type": "Maximize", "MetricName": "validation:accuracy"}
    assert cfg["ResourceLimits"]["MaxNumberOfTrainingJobs"] == 4 and cfg["ResourceLimits"]["MaxParallelTrainingJobs"] == 2
    ranges = cfg["ParameterRanges"]
    assert ranges["ContinuousParameterRanges"] == [
        {"Name": "lr", "MinValue": "0.001", "MaxValue": "0.1", "ScalingType": "Logarithmic"}]
    categorical = {r["Name"]: r["Values"] for r in ranges["CategoricalParameterRanges"]}
    assert categorical == {"batch_size": ["8", "16"], "model.hidden": ["8", "16", "24", "32"]}
    assert d["WarmStartConfig"] == {"ParentHyperParameterTuningJobs": [
        {"HyperParameterTuningJobName": "bestiary-earlier-study"}], "WarmStartType": "TransferLearning"}
    definition = d["TrainingJobDefinition"]
    # trials may share the checkpoint location: each keeps its run under its own job name
    assert definition["Environment"]["BESTIARY_RUN_PER_JOB"] == "1"
    assert definition["CheckpointConfig"] == {"S3Uri": "s3://bestiary-data/ckpt", "LocalPath": "/opt/ml/checkpoints"}
    static = definition["StaticHyperParameters"]
    # the toolkit of the PyTorch images starts torchrun with these (tuning jobs keep the image's entrypoint)
    assert static["sagemaker_torch_distributed_enabled"] == "true"
    assert static["sagemaker_mpi_num_of_processes_per_host"] == "2"
    assert static["sagemaker_program"].strip('"') == "bestiary_entry.py"
    assert static["sagemaker_submit_directory"].strip('"').endswith("sourcedir.tar.gz")
    assert {k: v for k, v in static.items() if k in plan["hyperparameters"]} == plan["hyperparameters"]
    regex = definition["AlgorithmSpecification"]["MetricDefinitions"][0]
    assert regex["Name"] == "validation:accuracy"
    assert plan["tuning"]["objective"]["metric"] == "validation:accuracy"
    assert plan["estimated_cost_usd"]["jobs"] == 4


def test_tuning_trial_runs_under_torchrun(tuning_job: dict[str, Any], tmp_path: Path) -> None:
    """One trial as the framework image's toolkit would run it: the static hyperparameters the
    tuning job holds, the code it uploaded, a trial's values; torchrun starts two processes."""
    import boto3
    from smkit import opt_ml, run_toolkit

    from bestiary import load_model

    static = dict(tuning_job["described"]["TrainingJobDefinition"]["StaticHyperParameters"])
    submit = static["sagemaker_submit_directory"].strip('"')
    bucket, _, key = submit[len("s3://"):].partition("/")
    tarball = tmp_path / "sourcedir.tar.gz"
    boto3.client("s3", region_name=REGION).download_file(bucket, key, str(tarball))
    code = tmp_path / "code"
    with tarfile.open(tarball) as tar:
        tar.extractall(code, filter="data")
    (code / "requirements.txt").unlink()  # the test environment has bestiary's dependencies; pip would ask the index
    hps = {k: json.loads(v) if v.startswith('"') else v for k, v in static.items() if not k.startswith("_")}
    hps.update({"lr": "0.05", "batch_size": "8", "model.hidden": "24", "sagemaker_submit_directory": str(code)})
    base = opt_ml(tmp_path, code, hps)
    environment = tuning_job["described"]["TrainingJobDefinition"]["Environment"]
    done = run_toolkit(base, framework=True, environment={**environment, "TRAINING_JOB_NAME": "trial-007"})
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "torchrun --nnodes 1 --nproc_per_node 2 bestiary_entry.py" in done.stdout + done.stderr
    config = json.loads((base / "output" / "data" / "config.json").read_text())
    assert config["config"]["run_dir"] == str(base / "checkpoints" / "trial-007" / "run")
    assert config["resolved"]["world_size"] == 2
    assert config["config"]["lr"] == 0.05 and config["config"]["batch_size"] == 8
    assert config["config"]["model"] == {"hidden": 24}
    definition = tuning_job["described"]["TrainingJobDefinition"]["AlgorithmSpecification"]["MetricDefinitions"][0]
    values = [float(v) for v in re.findall(definition["Regex"], done.stdout + done.stderr)]
    assert len(values) == 2 and all(0 <= v <= 1 for v in values)  # the objective, after each of 2 epochs
    with toy_host():
        model = load_model(base / "model")
    assert model[1].out_features == 24


def test_jobs_stop_sends_stop_training_job(train_job: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    """The emulator does not implement StopTrainingJob: botocore's Stubber checks the request the
    real client would send (and answers the tuning-job probe as AWS does for a training job)."""
    import boto3
    from botocore.stub import Stubber

    from bestiary.cli import main
    from bestiary.plugins.launchers.sagemaker import jobs as sagemaker_jobs

    name = train_job["result"].job_name
    client = boto3.client("sagemaker", region_name=REGION)
    stub = Stubber(client)
    stub.add_client_error("describe_hyper_parameter_tuning_job", "ResourceNotFound", "not found",
                          expected_params={"HyperParameterTuningJobName": name})
    stub.add_response("stop_training_job", {}, expected_params={"TrainingJobName": name})
    monkeypatch.setattr(sagemaker_jobs, "_client", lambda service, region: client)
    with stub:
        stopped = CliRunner().invoke(main, ["jobs", "stop", name])
        assert stopped.exit_code == 0, stopped.output
        stub.assert_no_pending_responses()
    assert f"asked {name} to stop" in stopped.output


def test_train_command_launches_and_waits(aws: dict[str, Any]) -> None:
    """``bestiary train --launcher sagemaker`` end to end against the emulator, which reports a
    created job as completed at once (it runs no container)."""
    from bestiary.cli import main
    from bestiary.launch.record import recorded_jobs

    with toy_host():
        done = CliRunner().invoke(main, ["train", "toy_mlp", "--dataset", "blobs", "--epochs", "1", "--launcher",
                                         "sagemaker", "--role", ROLE, "--image", IMAGE, "--json"])
    assert done.exit_code == 0, done.output
    result = json.loads(done.output[done.output.index("{"):])
    assert result["status"] == "Completed" and result["exit_code"] == 0
    assert result["staged"]["source"] == "source" and result["staged"]["files"] > 50
    assert recorded_jobs()[0]["name"] == result["job_name"]


def test_the_sdk_sees_telemetry_off_and_nothing_left_the_machine(train_job: dict[str, Any]) -> None:
    from sagemaker.core.common_utils import resolve_value_from_config
    from sagemaker.core.config.config_schema import TELEMETRY_OPT_OUT_PATH

    from bestiary.plugins.launchers.sagemaker.trainer import session

    opted_out = resolve_value_from_config(config_path=TELEMETRY_OPT_OUT_PATH, default_value=False,
                                          sagemaker_session=session(REGION))
    assert opted_out is True
    assert train_job["aws"]["leaks"] == []


def test_jobs_show_describes_a_tuning_job(tuning_job: dict[str, Any]) -> None:
    from bestiary.cli import main

    name = tuning_job["result"].job_name
    shown = CliRunner().invoke(main, ["jobs", "show", name, "--json"])
    assert shown.exit_code == 0, shown.output
    facts = json.loads(shown.output)
    assert facts["kind"] == "tune" and facts["strategy"] == "Bayesian"
    assert facts["objective"] == {"Type": "Maximize", "MetricName": "validation:accuracy"}


def test_hyperband_study_is_accepted(aws: dict[str, Any]) -> None:
    import boto3

    study = Study(space=SPACE, strategy="hyperband", max_jobs=3, seed=5)
    with toy_host():
        job = Job("tune", _options(instance_count=1, nproc_per_node=1, spot=False, max_wait=None, checkpoint_s3=None),
                  config=TOY.replace(strategy="single", epochs=4), study=study)
        result = get_launcher("sagemaker").launch(job)
    d = boto3.client("sagemaker", region_name=REGION).describe_hyper_parameter_tuning_job(
        HyperParameterTuningJobName=result.job_name)
    cfg = d["HyperParameterTuningJobConfig"]
    assert cfg["Strategy"] == "Hyperband" and cfg["TrainingJobEarlyStoppingType"] == "Off"
    assert cfg["StrategyConfig"] == {"HyperbandStrategyConfig": {"MinResource": 1, "MaxResource": 4}}
    assert cfg["RandomSeed"] == 5
    definition = d["TrainingJobDefinition"]
    assert definition["CheckpointConfig"]["S3Uri"].endswith("/tuning-checkpoints")  # a default, as the API needs one
    assert "sagemaker_torch_distributed_enabled" not in definition["StaticHyperParameters"]  # one process
