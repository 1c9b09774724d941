"""The ddp strategy and the torchrun launcher: real worker processes on gloo, world size 2.

The reference for every distributed run is one process on the global batch: the EpochSampler gives
rank r the indices r::world of the epoch's permutation, so ranks with batch B together see exactly
the samples one process sees with batch 2B, and DDP's gradient average equals the gradient of the
mean loss over 2B (SGD, constant rate, no dropout, no BatchNorm).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import bestiary
from bestiary.engine.config import RunConfig
from bestiary.engine.rundir import RunDir
from bestiary.engine.torchrun import Launch, fix_run_dir, to_toml, torchrun_args, worker_env
from bestiary.engine.trainer import train
from bestiary.errors import ConfigError

ENGINE_TESTS = Path(__file__).resolve().parents[1] / "engine"
STEPS, BATCH = 8, 8
COMMON = {"arch": "toy_mlp", "dataset": "blobs", "optimizer": "sgd", "lr": 0.05, "schedule": "constant",
          "model": {"dropout": 0.0}, "max_steps": STEPS, "log_every": 1, "checkpoint_every": 2, "quiet": True}
ARGS = ["toy_mlp", "--dataset", "blobs", "--strategy", "ddp", "--batch-size", str(BATCH), "--max-steps", str(STEPS),
        "--optimizer", "sgd", "--lr", "0.05", "--schedule", "constant", "--set", "model.dropout=0.0",
        "--log-every", "1", "--checkpoint-every", "2", "--quiet"]

KILLER = textwrap.dedent(
    """
    import os, signal
    from bestiary import hookimpl

    @hookimpl
    def on_run_start(run):
        with open(os.environ["KILL_MARK"] + ".starts", "a") as f:
            f.write(f"{run.strategy.rank} {run.resumed_step}\\n")

    @hookimpl
    def on_step_end(run, step, metrics):
        first_attempt = os.environ.get("TORCHELASTIC_RESTART_COUNT", "0") == "0"
        if step == int(os.environ["KILL_AT"]) and run.strategy.rank == int(os.environ.get("KILL_RANK", "1")) and first_attempt:
            open(os.environ["KILL_MARK"], "w").close()
            os.kill(os.getpid(), signal.SIGKILL)
    """
)


@pytest.fixture(autouse=True)
def _toy(toy_host):
    return toy_host


def env(*paths: Path, plugins: tuple[str, ...] = ()) -> dict[str, str]:
    out = dict(os.environ)
    out["PYTHONPATH"] = os.pathsep.join([*map(str, paths), str(ENGINE_TESTS), out.get("PYTHONPATH", "")])
    out["BESTIARY_PLUGINS"] = ",".join(["toyzoo", *plugins])
    out["BESTIARY_DISABLE_PLUGIN_AUTOLOAD"] = "1"
    out["BESTIARY_STRICT_PLUGINS"] = "1"  # a plugin that fails to load fails the test, not silently
    return out


def bestiary_cli(*args: str, env: dict[str, str], **kw) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "bestiary", "train", *args], env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kw)


def finish(proc: subprocess.Popen[str]) -> str:
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, f"exit {proc.returncode}\n{out}\n{err}"
    return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def weights(run_dir: Path) -> dict[str, torch.Tensor]:
    return load_file(str(Path(run_dir) / "model" / "model.safetensors"))


def reference(tmp_path: Path) -> dict[str, torch.Tensor]:
    """One process, batch 2B: the same samples per step as two ranks with batch B."""
    train(RunConfig(**COMMON, batch_size=2 * BATCH, run_dir=str(tmp_path / "single")))
    return weights(tmp_path / "single")


def assert_same_model(run_dir: Path, expected: dict[str, torch.Tensor]) -> None:
    got = weights(run_dir)
    assert sorted(got) == sorted(expected)  # saved from the unwrapped module: no "module." prefix
    for key, value in expected.items():
        torch.testing.assert_close(got[key], value, rtol=0, atol=1e-5, msg=key)


def train_steps(run_dir: Path) -> list[int]:
    return [r["step"] for r in RunDir(run_dir).metrics() if r["split"] == "train"]


# -- in one process --------------------------------------------------------------------------


def test_ddp_rejects_unknown_options_with_the_valid_ones():
    from bestiary.plugins.parallel.ddp import DDPStrategy

    with pytest.raises(ValueError, match="bucket_cap_mb"):
        DDPStrategy(bucket_size=5)


def test_ddp_as_a_group_of_one_accumulates_with_options_and_saves_the_bare_module(tmp_path):
    # two micro-batches of 8 under no_sync, then one all-reduce: the same step as one batch of 16
    summary = train(RunConfig(**COMMON, batch_size=8, accumulate=2, strategy="ddp", run_dir=str(tmp_path / "ddp"),
                              strategy_options={"bucket_cap_mb": 1, "gradient_as_bucket_view": True}))
    assert summary["status"] == "completed"
    assert_same_model(tmp_path / "ddp", reference(tmp_path))


def test_config_survives_the_launchers_toml_file(tmp_path):
    cfg = RunConfig(**COMMON, batch_size=8, strategy="ddp", metrics=["accuracy"], weight_decay=0.5,
                    strategy_options={"bucket_cap_mb": 1.5, "static_graph": True}, run_dir='a "quoted" dir')
    path = tmp_path / "config.toml"
    path.write_text(to_toml(cfg))
    assert RunConfig.load(path) == cfg


def test_launch_fixes_the_run_dir_and_needs_one_for_several_machines(tmp_path):
    cfg = RunConfig(**COMMON, strategy="ddp", runs_root=str(tmp_path / "runs"))
    fixed = fix_run_dir(cfg, Launch(nproc_per_node=2))
    assert Path(fixed.run_dir).is_absolute() and Path(fixed.run_dir).parent == (tmp_path / "runs").resolve()
    with pytest.raises(ConfigError, match="--strategy ddp"):
        fix_run_dir(cfg.replace(strategy="single"), Launch(nproc_per_node=2))
    with pytest.raises(ConfigError, match="--run-dir"):
        fix_run_dir(cfg, Launch(nnodes=2, rdzv_endpoint="127.0.0.1:29400"))
    with pytest.raises(ConfigError, match="--rdzv-endpoint"):
        Launch(nnodes=2).validate()
    with pytest.raises(ConfigError, match="--node-rank"):
        Launch(nnodes=2, node_rank=2, rdzv_endpoint="h:1").validate()


def test_torchrun_arguments_and_worker_environment(tmp_path, monkeypatch):
    args = torchrun_args(Launch(nproc_per_node=2, max_restarts=1), tmp_path / "c.toml", "rid")
    assert "--standalone" in args and args[args.index("--max-restarts") + 1] == "1"
    assert args[-6:] == ["--module", "bestiary", "train", "--config", str(tmp_path / "c.toml"), "--resume-existing"]
    args = torchrun_args(Launch(nnodes=2, node_rank=1, rdzv_endpoint="10.0.0.1:29400"), tmp_path / "c.toml", "rid")
    assert "--standalone" not in args and args[args.index("--rdzv-endpoint") + 1] == "10.0.0.1:29400"
    for name in ("TORCH_DISABLE_SHARE_RDZV_TCP_STORE", "OMP_NUM_THREADS"):
        monkeypatch.delenv(name, raising=False)
    cfg = RunConfig(**COMMON, device="cpu")
    assert worker_env(cfg, Launch(nproc_per_node=2, max_restarts=1)) == {
        "TORCH_DISABLE_SHARE_RDZV_TCP_STORE": "1", "OMP_NUM_THREADS": "1"}
    monkeypatch.setenv("OMP_NUM_THREADS", "4")
    assert worker_env(cfg, Launch(nproc_per_node=2)) == {}


# -- real torchrun, gloo, two processes --------------------------------------------------------


@pytest.mark.slow
def test_ddp_on_two_processes_equals_one_process_on_the_global_batch(tmp_path):
    expected = reference(tmp_path)
    run_dir = tmp_path / "ddp"
    out = finish(bestiary_cli(*ARGS, "--nproc-per-node", "2", "--run-dir", str(run_dir), env=env()))
    assert out.count("run directory:") == 1, out  # only rank 0 reports
    assert_same_model(run_dir, expected)
    resolved = RunDir(run_dir).read_json("config.json")["resolved"]
    assert resolved["world_size"] == 2 and resolved["strategy"].endswith("ddp")
    assert train_steps(run_dir) == list(range(1, STEPS + 1))  # one writer, one record per step
    single = json.loads((tmp_path / "single" / "summary.json").read_text())["final"]
    final = json.loads((run_dir / "summary.json").read_text())["final"]
    assert final == pytest.approx(single, abs=1e-5)


@pytest.mark.slow
def test_sigkilled_worker_is_restarted_and_resumes_from_the_checkpoint(tmp_path):
    (tmp_path / "plugins").mkdir()
    (tmp_path / "plugins" / "killer.py").write_text(KILLER)
    worker_env_ = env(tmp_path / "plugins", plugins=("killer",))
    worker_env_.update(KILL_AT="5", KILL_MARK=str(tmp_path / "killed"))
    run_dir = tmp_path / "ddp"
    finish(bestiary_cli(*ARGS, "--nproc-per-node", "2", "--max-restarts", "1", "--run-dir", str(run_dir),
                        env=worker_env_))
    assert (tmp_path / "killed").exists(), "rank 1 was never killed"
    starts = sorted((tmp_path / "killed.starts").read_text().splitlines())
    assert starts == ["0 0", "0 4", "1 0", "1 4"]  # both ranks restarted from the step-4 checkpoint
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["steps"] == STEPS
    assert train_steps(run_dir) == list(range(1, STEPS + 1))  # steps after the checkpoint replayed once
    assert_same_model(run_dir, reference(tmp_path))


@pytest.mark.slow
def test_two_nodes_on_one_host_form_one_run(tmp_path):
    endpoint = f"127.0.0.1:{free_port()}"
    run_dir = tmp_path / "ddp"
    nodes = [bestiary_cli(*ARGS, "--nnodes", "2", "--nproc-per-node", "1", "--node-rank", str(rank),
                          "--rdzv-endpoint", endpoint, "--run-dir", str(run_dir), env=env())
             for rank in (0, 1)]
    outs = [finish(p) for p in nodes]
    assert sum(o.count("run directory:") for o in outs) == 1, outs
    assert RunDir(run_dir).read_json("config.json")["resolved"]["world_size"] == 2
    assert_same_model(run_dir, reference(tmp_path))


@pytest.mark.slow
def test_ddp_run_resumes_at_another_world_size(tmp_path):
    (tmp_path / "plugins").mkdir()
    (tmp_path / "plugins" / "killer.py").write_text(KILLER)
    killer_env = env(tmp_path / "plugins", plugins=("killer",))
    # 2 -> 1: rank 1 dies at step 5 with no restarts left; one process continues from step 4
    two = tmp_path / "two"
    proc = bestiary_cli(*ARGS, "--nproc-per-node", "2", "--run-dir", str(two),
                        env={**killer_env, "KILL_AT": "5", "KILL_MARK": str(tmp_path / "two-killed")})
    proc.communicate(timeout=120)
    assert proc.returncode != 0 and (two / "checkpoints" / "step-00000004").is_dir()
    finish(bestiary_cli("--resume", str(two), env={**killer_env, "KILL_AT": "0", "KILL_MARK": str(tmp_path / "two-killed")}))
    assert json.loads((two / "summary.json").read_text())["steps"] == STEPS
    assert (tmp_path / "two-killed.starts").read_text().splitlines()[-1] == "0 4"
    # 1 -> 2: one process dies at step 5; two processes continue from step 4
    one = tmp_path / "one"
    proc = bestiary_cli(*ARGS, "--run-dir", str(one),
                        env={**killer_env, "KILL_AT": "5", "KILL_RANK": "0", "KILL_MARK": str(tmp_path / "one-killed")})
    proc.communicate(timeout=120)
    assert proc.returncode == -9 and (one / "checkpoints" / "step-00000004").is_dir()
    finish(bestiary_cli("--resume", str(one), "--nproc-per-node", "2",
                        env={**killer_env, "KILL_AT": "0", "KILL_MARK": str(tmp_path / "one-killed")}))
    summary = json.loads((one / "summary.json").read_text())
    assert summary["steps"] == STEPS and summary["status"] == "completed"
    starts = (tmp_path / "one-killed.starts").read_text().splitlines()
    assert sorted(starts[-2:]) == ["0 4", "1 4"]
    assert bestiary.load_model(one)(torch.zeros(2, 1, 4, 4)).shape == (2, 3)
