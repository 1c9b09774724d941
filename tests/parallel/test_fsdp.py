"""The fsdp strategy: sharded training equals one process on the global batch, checkpoints reshard
across world sizes, and the exported model is one plain safetensors file.

Fast tests run the ranks as threads of this process (torch's threaded process group); the slow ones
start real processes with torchrun over gloo.
"""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
from safetensors.torch import load_file

import bestiary
from bestiary.engine.config import RunConfig
from bestiary.engine.trainer import train
from bestiary.errors import CheckpointError

ENGINE_TESTS = Path(__file__).resolve().parent.parent / "engine"


# -- ranks as threads ---------------------------------------------------------------------------

def run_threads(world: int, fn):
    """``fn(rank)`` on ``world`` threads that form a process group; the results by rank."""
    from torch.testing._internal.distributed import multi_threaded_pg as mtp  # private: test-only

    torch._C._distributed_c10d._set_thread_isolation_mode(True)
    mtp._install_threaded_pg()
    store = dist.HashStore()
    results: list = [None] * world
    errors: list[BaseException] = []

    def worker(rank: int) -> None:
        dist.init_process_group("threaded", rank=rank, world_size=world, store=store)
        try:
            results[rank] = fn(rank)
        except BaseException as exc:  # reported below, after every thread stopped
            errors.append(exc)
            mtp.ProcessLocalGroup.exception_handle(exc)
        finally:
            dist.destroy_process_group()

    threads = [threading.Thread(target=worker, args=(r,)) for r in range(world)]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
    finally:
        mtp.ProcessLocalGroup.reset()
        mtp._uninstall_threaded_pg()
        torch._C._distributed_c10d._set_thread_isolation_mode(False)
    if errors:
        raise errors[0]
    return results


def _mlp() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 12), torch.nn.ReLU(), torch.nn.Linear(12, 3))


_MLP = _mlp()


def mlp() -> torch.nn.Module:
    """The same initial model on every rank (the rank threads share one global RNG, so none seeds)."""
    return copy.deepcopy(_MLP)


def strategy(rank: int, world: int, **options):
    from bestiary.plugins.parallel.fsdp import FSDPStrategy

    s = FSDPStrategy(**options)
    s.rank, s.world_size, s.device = rank, world, torch.device("cpu")
    return s


def batches(n: int = 3, size: int = 8):
    g = torch.Generator().manual_seed(1)
    return [(torch.randn(size, 1, 4, 4, generator=g), torch.randint(0, 3, (size,), generator=g)) for _ in range(n)]


def loss_fn(m, batch):
    out = m(batch[0])
    return torch.nn.functional.cross_entropy(out, batch[1]), out


def reference(optim: str = "sgd") -> dict[str, torch.Tensor]:
    model = mlp()
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9) if optim == "sgd" else torch.optim.AdamW(model.parameters(), lr=1e-2)
    for b in batches():
        loss_fn(model, b)[0].backward()
        opt.step()
        opt.zero_grad()
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def sharded_train(rank: int, world: int, optim: str = "sgd", steps=None, **options):
    s = strategy(rank, world, **options)
    model = s.prepare_model(mlp())
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9) if optim == "sgd" else torch.optim.AdamW(model.parameters(), lr=1e-2)
    for x, y in (steps or batches()):
        s.forward_backward(model, (x[rank::world], y[rank::world]), loss_fn, autocast=torch.autocast("cpu", enabled=False), scale=1.0)
        s.optimizer_step(model, opt)
    return s, model, opt


@pytest.mark.parametrize("options", [{}, {"activation_checkpointing": True}, {"blocks": ["Linear"]},
                                     {"blocks": ["1", "Linear"], "activation_checkpointing": True},
                                     {"reshard_after_forward": False}, {"cpu_offload": True}])
def test_threaded_fsdp_equals_one_process(options):
    expected = reference()

    def fn(rank):
        s, model, _ = sharded_train(rank, 2, **options)
        assert all(type(p).__name__ == "DTensor" for p in model.parameters())
        return s.model_state(model)

    full, empty = run_threads(2, fn)
    assert empty == {}
    assert sorted(full) == sorted(expected)
    for k, v in expected.items():
        assert full[k].device.type == "cpu"
        torch.testing.assert_close(full[k], v, atol=1e-6, rtol=0)


def test_threaded_whole_state_loads_into_shards():
    expected = reference(optim="adamw")

    def fn(rank):
        s, model, opt = sharded_train(rank, 2, optim="adamw")
        optim_state = s.optimizer_state(model, opt)
        fresh = s.prepare_model(mlp())
        s.load_model_state(fresh, expected)  # the same dict on both ranks: must stay as it is
        return s.model_state(fresh), optim_state

    (full, optim_state), (_, empty) = run_threads(2, fn)
    assert empty == {}
    assert optim_state["state"]["1.weight"]["exp_avg"].shape == (12, 16)  # whole, by parameter name
    for k, v in expected.items():
        assert torch.equal(full[k], v)


def test_threaded_bf16_mixed_precision_trains_close():
    expected = reference()

    def fn(rank):
        s, model, _ = sharded_train(rank, 2, mixed_precision="bf16", reduce_dtype="fp32")
        return s.model_state(model)

    full = run_threads(2, fn)[0]
    assert all(v.dtype == torch.float32 for v in full.values())  # shards stay fp32
    torch.testing.assert_close(full["1.weight"], expected["1.weight"], atol=5e-2, rtol=0)


def test_checkpoint_reshards_2_to_1_and_refuses_corruption(tmp_path):
    path = tmp_path / "checkpoints" / "step-00000003"
    extra = {"state": {"step": 3, "epoch": 0}, "rng": {"torch": torch.get_rng_state()}, "scheduler": {"x": (1, 2)}}
    first, rest = batches()[:2], batches()[2:]
    expected_final = reference(optim="adamw")

    def save(rank):
        s, model, opt = sharded_train(rank, 2, optim="adamw", steps=first)
        s.save_checkpoint(path, model, opt, extra)

    run_threads(2, save)
    manifest = json.loads((path / "manifest.json").read_text())
    assert manifest["format"] == "bestiary-checkpoint-dcp/1"
    assert "dcp/.metadata" in manifest["files"]
    assert not list(path.parent.glob(".*"))  # no temporary folder left

    def resume(rank):  # world 1: the two shards are read into one
        s = strategy(rank, 1)
        model = s.prepare_model(mlp())
        opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
        got = s.load_checkpoint(path, model, opt)
        for x, y in rest:
            s.forward_backward(model, (x, y), loss_fn, autocast=torch.autocast("cpu", enabled=False), scale=1.0)
            s.optimizer_step(model, opt)
        return got, s.model_state(model)

    got, final = run_threads(1, resume)[0]
    assert got["state"] == {"step": 3, "epoch": 0} and got["scheduler"] == {"x": (1, 2)}
    assert torch.equal(got["rng"]["torch"], extra["rng"]["torch"])
    for k, v in expected_final.items():
        torch.testing.assert_close(final[k], v, atol=1e-6, rtol=0)

    shard = next((path / "dcp").glob("*.distcp"))
    shard.write_bytes(shard.read_bytes()[:-8])

    def load_corrupt(rank):
        s = strategy(rank, 2)
        model = s.prepare_model(mlp())
        opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
        s.load_checkpoint(path, model, opt)

    with pytest.raises(CheckpointError, match="corrupt"):
        run_threads(2, load_corrupt)


def test_blocks_from_metadata_and_unknown_block():
    from bestiary.plugins.parallel.fsdp import blocks_from_metadata, find_blocks

    assert blocks_from_metadata({"parallel": {"fsdp_blocks": ["BasicBlock"]}}) == ["BasicBlock"]
    assert blocks_from_metadata({}) is None
    model = mlp()
    assert find_blocks(model, None) == [("1", model[1]), ("3", model[3])]
    assert find_blocks(model, ["3"]) == [("3", model[3])]
    nested = torch.nn.Sequential(torch.nn.Sequential(torch.nn.Linear(2, 2)), torch.nn.Linear(2, 2))
    assert [n for n, _ in find_blocks(nested, ["0", "Linear"])] == ["0.0", "0", "1"]  # inner first
    with pytest.raises(ValueError, match="classes in the model: .*Linear"):
        find_blocks(model, ["Block"])


def test_registered_and_options_checked():
    from bestiary.plugins.parallel.fsdp import FSDPStrategy

    host = bestiary.PluginHost(autoload=False)
    built = host.registry.table("strategies").get("fsdp").build(activation_checkpointing=True)
    assert isinstance(built, FSDPStrategy) and built.activation_checkpointing and built.blocks is None
    assert FSDPStrategy(parallel={"fsdp_blocks": ["BasicBlock"]}).blocks == ["BasicBlock"]
    assert FSDPStrategy(parallel={"fsdp_blocks": ["BasicBlock"]}, blocks="layer1").blocks == ["layer1"]
    with pytest.raises(ValueError, match="bf16, fp32"):
        FSDPStrategy(mixed_precision="int8")
    with pytest.raises(ValueError, match="no option 'bucket_cap_mb'; valid options: mixed_precision"):
        FSDPStrategy(bucket_cap_mb=25)


def test_threaded_timm_resnet_blocks_with_activation_checkpointing():
    timm = pytest.importorskip("timm")
    torch.manual_seed(0)
    base = timm.create_model("resnet18", pretrained=False, num_classes=3)
    keys = sorted(base.state_dict())
    x, y = torch.randn(4, 3, 32, 32), torch.tensor([0, 1, 2, 0])

    def fn(rank):
        s = strategy(rank, 2, blocks=["BasicBlock"], activation_checkpointing=True)
        model = s.prepare_model(copy.deepcopy(base))
        opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
        loss, _ = s.forward_backward(model, (x[rank::2], y[rank::2]), loss_fn,
                                     autocast=torch.autocast("cpu", enabled=False), scale=1.0)
        s.optimizer_step(model, opt, clip_grad_norm=1.0)
        return float(loss), s.model_state(model)

    (loss, full), _ = run_threads(2, fn)
    assert torch.isfinite(torch.tensor(loss))
    assert sorted(full) == keys  # checkpointing keeps parameter names


# -- real processes -------------------------------------------------------------------------------

WORKER = textwrap.dedent(
    """
    import json, sys
    import torch.distributed as dist
    import bestiary
    import toyzoo

    from bestiary.engine.config import RunConfig
    from bestiary.engine.trainer import train

    host = bestiary.reset_host(bestiary.PluginHost(autoload=False))
    host.add_plugin(toyzoo, "toyzoo")
    # one group for every job: the strategy uses it and leaves it open (a second group on torchrun's
    # store in one process would wait for ever)
    dist.init_process_group("gloo")
    for job in json.loads(sys.argv[1]):
        if "resume" in job:
            train(resume=job["resume"], host=host, quiet=True)
        else:
            train(RunConfig(**job), host=host)
    dist.destroy_process_group()
    """
)


def torchrun(tmp_path: Path, jobs: list[dict], nproc: int = 2) -> None:
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    env = {k: v for k, v in os.environ.items() if not k.startswith("BESTIARY_")}
    env.update(PYTHONPATH=os.pathsep.join([str(ENGINE_TESTS), env.get("PYTHONPATH", "")]), OMP_NUM_THREADS="1",
               TORCH_DISABLE_SHARE_RDZV_TCP_STORE="1")
    out = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}",
                          str(script), json.dumps(jobs)], env=env, capture_output=True, text=True, timeout=180,
                         check=False)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-5000:]


def run_config(tmp_path: Path, name: str, batch_size: int, max_steps: int, strategy: str = "fsdp") -> dict:
    # constant lr, so a run stopped at step 3 and resumed to 6 matches one of 6 steps throughout
    return {"arch": "toy_mlp", "dataset": "blobs", "strategy": strategy, "model": {"dropout": 0.0}, "optimizer": "sgd",
            "lr": 0.05, "schedule": "constant", "batch_size": batch_size, "max_steps": max_steps, "log_every": 1,
            "quiet": True, "run_dir": str(tmp_path / name)}


def extend(run_dir: Path, batch_size: int, max_steps: int) -> None:
    """Let a finished run continue to ``max_steps`` with a per-rank batch for another world size."""
    config = json.loads((run_dir / "config.json").read_text())
    config["config"].update(batch_size=batch_size, max_steps=max_steps)
    (run_dir / "config.json").write_text(json.dumps(config))
    (run_dir / "summary.json").unlink()


def weights(run_dir: Path) -> dict[str, torch.Tensor]:
    return load_file(str(run_dir / "model" / "model.safetensors"))


def assert_close(a: dict, b: dict, atol: float) -> None:
    assert sorted(a) == sorted(b)
    for k, v in a.items():
        torch.testing.assert_close(v, b[k], atol=atol, rtol=0, msg=lambda m, k=k: f"{k}: {m}")


@pytest.mark.slow
def test_torchrun_fsdp_matches_one_process_and_resumes_across_world_sizes(tmp_path, toy_host):
    # one process, global batch 16: the reference for everything below
    train(RunConfig(**run_config(tmp_path, "single", 16, 6, strategy="single")), host=toy_host)
    # fsdp at world 1, stopped at step 3: resumed at world 2 below
    train(RunConfig(**run_config(tmp_path, "one-to-two", 16, 3)), host=toy_host)
    extend(tmp_path / "one-to-two", 8, 6)

    # activation checkpointing through strategy_options: the same numbers, less memory
    two_to_one = {**run_config(tmp_path, "two-to-one", 8, 3), "strategy_options": {"activation_checkpointing": True}}
    torchrun(tmp_path, [run_config(tmp_path, "fsdp2", 8, 6), two_to_one,
                        {"resume": str(tmp_path / "one-to-two")}])
    expected = weights(tmp_path / "single")
    # (a) two ranks with batch 8 see the samples of one process with batch 16
    assert_close(weights(tmp_path / "fsdp2"), expected, atol=1e-5)
    # (b) resume 1 -> 2
    assert_close(weights(tmp_path / "one-to-two"), expected, atol=1e-6)
    (ckpt,) = (tmp_path / "two-to-one" / "checkpoints").iterdir()
    assert json.loads((ckpt / "manifest.json").read_text())["format"] == "bestiary-checkpoint-dcp/1"
    # (b) resume 2 -> 1
    extend(tmp_path / "two-to-one", 16, 6)
    summary = train(resume=tmp_path / "two-to-one", host=toy_host, quiet=True)
    assert summary["status"] == "completed" and summary["steps"] == 6
    assert_close(weights(tmp_path / "two-to-one"), expected, atol=1e-6)
    # (c) the consolidated artefact loads in one process, without torch.distributed
    model = bestiary.load_model(tmp_path / "fsdp2")
    ref = bestiary.load_model(tmp_path / "single")
    x = torch.randn(5, 1, 4, 4)
    torch.testing.assert_close(model(x), ref(x), atol=1e-5, rtol=0)
    assert all(type(p) is torch.nn.Parameter for p in model.parameters())


# -- nothing in a checkpoint runs -----------------------------------------------------------------

class _Payload:
    """Unpickling this touches ``trace``: what a malicious ``dcp/.metadata`` would run."""

    def __init__(self, trace: Path) -> None:
        self.trace = trace

    def __reduce__(self):
        return (Path.touch, (self.trace,))


def plant_payload(checkpoint: Path, trace: Path) -> Path:
    """Replace the checkpoint's dcp index by a pickle that would touch ``trace``, and rewrite the
    manifest to match, as anyone who can write the folder could."""
    import hashlib
    import pickle

    meta = checkpoint / "dcp" / ".metadata"
    meta.write_bytes(pickle.dumps(_Payload(trace)))
    manifest = json.loads((checkpoint / "manifest.json").read_text())
    manifest["files"]["dcp/.metadata"] = {"bytes": meta.stat().st_size,
                                          "sha256": hashlib.sha256(meta.read_bytes()).hexdigest()}
    (checkpoint / "manifest.json").write_text(json.dumps(manifest))
    return meta


def reseal(checkpoint: Path) -> None:
    """Rewrite the manifest to match the files as they are now."""
    import hashlib

    manifest = json.loads((checkpoint / "manifest.json").read_text())
    manifest["files"] = {p.relative_to(checkpoint).as_posix(): {"bytes": p.stat().st_size,
                                                               "sha256": hashlib.sha256(p.read_bytes()).hexdigest()}
                         for p in sorted(checkpoint.rglob("*")) if p.is_file() and p.name != "manifest.json"}
    (checkpoint / "manifest.json").write_text(json.dumps(manifest))


def test_a_payload_among_the_shards_values_is_refused_unrun(tmp_path):
    # torch stores non-tensor values (optimizer hyperparameters) as pickles inside the shards
    import shutil

    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.state_dict import get_state_dict

    path = tmp_path / "checkpoints" / "step-00000001"
    trace = tmp_path / "payload-ran"

    def save(rank):
        s, model, opt = sharded_train(rank, 1, optim="adamw", steps=batches()[:1])
        s.save_checkpoint(path, model, opt, {"state": {"step": 1}})
        model_sd, optim_sd = get_state_dict(model, opt)
        optim_sd["param_groups"][0]["lr"] = _Payload(trace)
        shutil.rmtree(path / "dcp")
        dcp.save({"model": model_sd, "optimizer": optim_sd}, checkpoint_id=str(path / "dcp"))

    run_threads(1, save)
    reseal(path)
    assert not trace.exists()

    def load(rank):
        s = strategy(rank, 1)
        model = s.prepare_model(mlp())
        s.load_checkpoint(path, model, torch.optim.AdamW(model.parameters(), lr=1e-2))

    with pytest.raises(CheckpointError, match="refused") as err:
        run_threads(1, load)
    assert str(path) in str(err.value) and "\n" not in str(err.value)
    assert not trace.exists()


def test_tampered_dcp_metadata_is_refused_unrun(tmp_path):
    path = tmp_path / "checkpoints" / "step-00000001"

    def save(rank):
        s, model, opt = sharded_train(rank, 2, optim="adamw", steps=batches()[:1])
        s.save_checkpoint(path, model, opt, {"state": {"step": 1}})

    run_threads(2, save)
    trace = tmp_path / "payload-ran"
    meta = plant_payload(path, trace)

    def load(rank):
        s = strategy(rank, 2)
        model = s.prepare_model(mlp())
        s.load_checkpoint(path, model, torch.optim.AdamW(model.parameters(), lr=1e-2))

    with pytest.raises(CheckpointError, match="refused") as err:
        run_threads(2, load)
    assert str(meta) in str(err.value) and "\n" not in str(err.value)
    assert not trace.exists()


@pytest.mark.slow
def test_torchrun_resume_refuses_a_tampered_dcp_index(tmp_path, toy_host):
    torchrun(tmp_path, [run_config(tmp_path, "run", 8, 3)])
    (checkpoint,) = (tmp_path / "run" / "checkpoints").iterdir()
    extend(tmp_path / "run", 8, 6)
    trace = tmp_path / "payload-ran"
    meta = plant_payload(checkpoint, trace)
    with pytest.raises(AssertionError) as failed:  # the resume must fail, on both ranks
        torchrun(tmp_path, [{"resume": str(tmp_path / "run")}])
    assert not trace.exists()
    lines = [ln for ln in str(failed.value).splitlines() if "CheckpointError:" in ln]
    assert lines and all(f"checkpoint metadata {meta} refused" in ln for ln in lines)
