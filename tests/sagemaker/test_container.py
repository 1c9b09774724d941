"""The container side: the SageMaker contract read by the entry point, and real runs of the
``sagemaker-training`` toolkit (the program of the framework images) in a temporary
``SAGEMAKER_BASE_DIR``: one process, and a spot interruption (SIGTERM, then a second container
resuming from the checkpoint folder) with the entry point starting torchrun itself."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from smkit import opt_ml, toolkit_env, toy_host

from bestiary.engine.config import RunConfig
from bestiary.errors import ConfigError
from bestiary.plugins.launchers.sagemaker.container import SageMakerEnv, job_config, trial_overrides


def _stage(code: Path, cfg: RunConfig, nproc: int = 1) -> Path:
    from bestiary.plugins.launchers.sagemaker.staging import stage

    stage(code, cfg, {"nproc_per_node": nproc, "instance_count": 1, "rdzv_port": 29400}, source="source")
    (code / "requirements.txt").unlink()  # the test environment has bestiary's dependencies; pip would ask the index
    return code


def test_contract_hyperparameters_channels_and_run_dir(tmp_path: Path) -> None:
    code = tmp_path / "code"
    cfg = RunConfig(arch="resnet18", dataset="image_folder", data={"path": "${SM_CHANNEL_TRAINING}/images"},
                    run_dir="runs/elsewhere", runs_root="runs")
    with toy_host():
        _stage(code, cfg)
    env = SageMakerEnv.from_environ({
        "SAGEMAKER_BASE_DIR": str(tmp_path / "opt_ml"), "SM_CHANNEL_TRAINING": "/data/train",
        "SM_HOSTS": '["algo-1", "algo-2"]', "SM_CURRENT_HOST": "algo-2", "SM_NUM_GPUS": "4",
        "SM_HPS": json.dumps({"lr": 0.05, "batch_size": "64", "model.drop_rate": "0.2", "optimizer": "sgd",
                              "sagemaker_program": "bestiary_entry.py", "_tuning_objective_metric": "x"})})
    assert env.hosts == ["algo-1", "algo-2"] and env.current_host == "algo-2" and env.num_gpus == 4
    assert env.model_dir == tmp_path / "opt_ml" / "model"
    assert env.checkpoint_dir == tmp_path / "opt_ml" / "checkpoints"
    assert trial_overrides(env.hyperparameters) == ["batch_size=64", "lr=0.05", "model.drop_rate=0.2", "optimizer=sgd"]
    os.environ["SM_CHANNEL_TRAINING"] = "/data/train"  # expandvars reads the process environment
    try:
        resolved = job_config(code, env)
    finally:
        del os.environ["SM_CHANNEL_TRAINING"]
    assert resolved.data == {"path": "/data/train/images"}
    assert (resolved.lr, resolved.batch_size, resolved.optimizer) == (0.05, 64, "sgd")
    assert resolved.model == {"drop_rate": 0.2}
    assert resolved.run_dir == str(tmp_path / "opt_ml" / "checkpoints" / "run") and resolved.quiet
    missing = SageMakerEnv.from_environ({"SAGEMAKER_BASE_DIR": str(tmp_path / "opt_ml")})
    with pytest.raises(ConfigError, match=r"channel the job does not have.*--input-s3"):
        job_config(code, missing)
    typo = SageMakerEnv.from_environ({"SM_HPS": '{"learning_rate": "0.1"}'})
    with pytest.raises(ConfigError, match="unknown config field 'learning_rate'"):
        job_config(code, typo)


@pytest.mark.slow
def test_toolkit_runs_one_process_and_the_model_loads(tmp_path: Path) -> None:
    from smkit import run_toolkit

    from bestiary import load_model

    cfg = RunConfig(arch="toy_mlp", dataset="blobs", epochs=2, batch_size=16, lr=0.01)
    with toy_host():
        code = _stage(tmp_path / "code", cfg)
    base = opt_ml(tmp_path, code, {"epochs": "3"})
    done = run_toolkit(base)
    out = done.stdout + done.stderr
    assert done.returncode == 0, out[-4000:]
    assert "bestiary_entry.py --epochs 3" in out  # the toolkit passes hyperparameters as arguments too
    assert f"from {base / 'code' / 'bestiary'}" in out  # the uploaded package (copied to /opt/ml/code) ran
    assert (base / "output" / "success").exists()
    summary = json.loads((base / "output" / "data" / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["epochs"] == 3  # the hyperparameter won
    assert (base / "output" / "data" / "metrics.jsonl").exists() and (base / "output" / "data" / "tensorboard").is_dir()
    assert f"[bestiary] step={summary['steps']} validation:loss=" in out
    import torch

    with toy_host():
        model = load_model(base / "model")
        again = load_model(base / "checkpoints" / "run")
    x = torch.randn(5, 1, 4, 4)
    assert torch.equal(model(x), again(x))


def _wait_for_group(pgid: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)
    os.killpg(pgid, signal.SIGKILL)
    raise AssertionError(f"processes of group {pgid} still ran {timeout} s after SIGTERM")


@pytest.mark.slow
def test_spot_interruption_resumes_from_the_checkpoint_folder(tmp_path: Path) -> None:
    """SIGTERM reaches the training processes, as when SageMaker stops a spot job; they save a
    checkpoint and end. A new container with the same checkpoint folder (SageMaker restores it from
    the checkpoint S3 URI) resumes the run and finishes it. Two processes, started with torchrun by
    the entry point itself (the plain toolkit starts one)."""
    pytest.importorskip("sagemaker_training", reason="needs the sagemaker-training toolkit")
    cfg = RunConfig(arch="toy_mlp", dataset="blobs", strategy="ddp", epochs=12, batch_size=4, checkpoint_every=10,
                    data={"n": 240})
    with toy_host():
        code = _stage(tmp_path / "code", cfg, nproc=2)
    checkpoints = tmp_path / "spot-checkpoints"
    first = opt_ml(tmp_path / "first", code, {})
    log = (tmp_path / "first.log").open("w")
    proc = subprocess.Popen([sys.executable, "-m", "sagemaker_training.cli.train"], cwd=tmp_path,
                            env=toolkit_env(first, checkpoints=checkpoints), stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)
    run = checkpoints / "run"
    deadline = time.monotonic() + 120
    while not list((run / "checkpoints").glob("step-*")) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    assert proc.poll() is None, (tmp_path / "first.log").read_text()[-3000:]
    signalled = time.monotonic()
    os.killpg(proc.pid, signal.SIGTERM)
    proc.wait(timeout=120)
    _wait_for_group(proc.pid, 120)  # the toolkit dies at once; the training processes save first
    took = time.monotonic() - signalled
    log.close()
    first_out = (tmp_path / "first.log").read_text()
    assert proc.returncode != 0, first_out[-3000:]
    assert took < 120, f"the processes took {took:.0f} s to stop; SageMaker kills them after 120 s"
    interrupted = json.loads((run / "summary.json").read_text())
    assert interrupted["status"] == "interrupted" and interrupted["signal"] == "SIGTERM", first_out[-3000:]
    saved = sorted(int(p.name.split("-")[1]) for p in (run / "checkpoints").glob("step-*"))
    assert saved[-1] == interrupted["steps"] > 0  # a checkpoint at the step the signal arrived
    assert not (first / "model" / "model.json").exists()

    second = opt_ml(tmp_path / "second", code, {})
    done = subprocess.run([sys.executable, "-m", "sagemaker_training.cli.train"], cwd=tmp_path,
                          env=toolkit_env(second, checkpoints=checkpoints), capture_output=True, text=True, timeout=300, check=False)
    out = done.stdout + done.stderr
    assert done.returncode == 0, out[-4000:]
    assert f"resuming run {run} from step-{saved[-1]:08d}" in out
    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["steps"] == summary["total_steps"] > interrupted["steps"]
    config = json.loads((second / "output" / "data" / "config.json").read_text())
    assert config["resolved"]["world_size"] == 2
    assert (second / "model" / "model.safetensors").exists()


def test_a_command_job_runs_in_the_checkpoint_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Any bestiary command as a job (here a short training run): it works in <checkpoints>/work,
    whose files become the job's output."""
    from bestiary.plugins.launchers.sagemaker import container
    from bestiary.plugins.launchers.sagemaker.staging import stage

    code = tmp_path / "code"
    argv = ["train", "toy_mlp", "--dataset", "blobs", "--max-steps", "2", "--runs-root", "runs", "--quiet"]
    stage(code, None, {"kind": "command", "argv": argv, "nproc_per_node": 1}, source="installed")
    assert not (code / "bestiary_config.toml").exists() and not (code / "requirements.txt").exists()
    base = tmp_path / "opt_ml"
    monkeypatch.setenv("SAGEMAKER_BASE_DIR", str(base))
    monkeypatch.setenv("BESTIARY_PLUGINS", "")
    monkeypatch.setenv("PYTHONPATH", "")
    monkeypatch.chdir(tmp_path)
    with toy_host():
        assert container.main(code) == 0
    assert Path.cwd() == tmp_path
    (run,) = (base / "output" / "data" / "runs").glob("*toy_mlp-blobs*")
    assert (run / "model" / "model.json").exists()
    assert json.loads((run / "summary.json").read_text())["steps"] == 2
    assert (base / "checkpoints" / "work" / "runs" / run.name / "summary.json").exists()


@pytest.mark.slow
def test_two_hosts_form_one_run(tmp_path: Path) -> None:
    """Two instances, simulated by two toolkit runs whose hosts are 127.0.0.1 and 127.0.0.2: the
    entry points start one torchrun across both (world size 2). They share one checkpoint folder
    here, standing in for the same path on each instance (rank 0 writes the run)."""
    import socket

    pytest.importorskip("sagemaker_training", reason="needs the sagemaker-training toolkit")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    cfg = RunConfig(arch="toy_mlp", dataset="blobs", strategy="ddp", epochs=2, batch_size=8)
    with toy_host():
        code = tmp_path / "code"
        from bestiary.plugins.launchers.sagemaker.staging import stage

        stage(code, cfg, {"nproc_per_node": 1, "instance_count": 2, "rdzv_port": port}, source="source")
    (code / "requirements.txt").unlink()  # the test environment has bestiary's dependencies
    hosts = ("127.0.0.1", "127.0.0.2")
    procs = []
    for i, host in enumerate(hosts):
        base = opt_ml(tmp_path / f"host{i}", code, {}, hosts=hosts)
        config = base / "input" / "config" / "resourceconfig.json"
        config.write_text(json.dumps({"current_host": host, "hosts": list(hosts), "network_interface_name": "lo"}))
        procs.append(subprocess.Popen([sys.executable, "-m", "sagemaker_training.cli.train"], cwd=tmp_path,
                                      env=toolkit_env(base, checkpoints=tmp_path / "checkpoints"),
                                      stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
    outputs = [p.communicate(timeout=300)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], "\n".join(o[-2000:] for o in outputs)
    assert all("starting 1 process(es) on each of 2 host(s) with torchrun" in o for o in outputs)
    run = json.loads((tmp_path / "checkpoints" / "run" / "config.json").read_text())
    assert run["resolved"]["world_size"] == 2 and run["status"] == "completed"
    assert (tmp_path / "host0" / "opt_ml" / "model" / "model.safetensors").exists()


def test_a_train_job_trains_in_process_through_start_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The entry point trains a one-process job here (no command line in between), exports the
    model, and on a restart of a finished job only exports it again; a name no plugin registers
    is the user's to fix: exit status 2 with the message, as `bestiary train` gives."""
    from bestiary.plugins.launchers.sagemaker import container
    from bestiary.plugins.launchers.sagemaker.staging import stage

    base = tmp_path / "opt_ml"
    monkeypatch.setenv("SAGEMAKER_BASE_DIR", str(base))
    monkeypatch.setenv("BESTIARY_PLUGINS", "")
    monkeypatch.setenv("PYTHONPATH", "")
    for name in ("RANK", "LOCAL_RANK", "WORLD_SIZE"):
        monkeypatch.delenv(name, raising=False)
    code = tmp_path / "code"
    with toy_host():
        stage(code, RunConfig(arch="toy_mlp", dataset="blobs", max_steps=3), {"nproc_per_node": 1}, source="installed")
        assert container.main(code) == 0
        summary = json.loads((base / "checkpoints" / "run" / "summary.json").read_text())
        assert summary["status"] == "completed" and summary["steps"] == 3
        assert (base / "model" / "model.safetensors").exists()
        assert json.loads((base / "output" / "data" / "summary.json").read_text()) == summary
        assert container.main(code) == 0  # already completed: exported, not trained again
        assert json.loads((base / "checkpoints" / "run" / "summary.json").read_text()) == summary

        typo = tmp_path / "typo"
        monkeypatch.setenv("SAGEMAKER_BASE_DIR", str(tmp_path / "typo_ml"))
        stage(typo, RunConfig(arch="toy_mlpp", dataset="blobs", max_steps=3), {"nproc_per_node": 1}, source="installed")
        assert container.main(typo) == 2
