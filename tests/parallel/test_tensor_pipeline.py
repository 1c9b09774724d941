"""Tensor and pipeline strategies: plans, split points, the check before launch, and real torchrun
runs compared with one process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent / "engine")]

import parzoo
import toyzoo

import bestiary


@pytest.fixture
def host():
    h = bestiary.reset_host(bestiary.PluginHost())
    h.add_plugin(toyzoo, "toyzoo")
    h.add_plugin(parzoo, "parzoo")
    return h


def test_strategies_declare_requirements(host):
    table = host.registry.table("strategies")
    assert table.get("tensor").metadata["requires"] == "tensor"
    assert table.get("pipeline").metadata["requires"] == "pipeline"


def test_vision_entries_declare_layouts(host):
    archs = host.registry.table("architectures")
    vit = archs.get("vit_large_patch16_224").metadata["parallel"]
    assert vit["tensor_plan"] == {"blocks.*.attn.qkv": "colwise_replicate", "blocks.*.attn.proj": "rowwise_replicate",
                                  "blocks.*.mlp.fc1": "colwise", "blocks.*.mlp.fc2": "rowwise"}
    assert vit["pipeline_splits"][0] == "blocks.1" and vit["pipeline_splits"][-1] == "blocks.23"
    resnet = archs.get("resnet50").metadata["parallel"]
    assert resnet == {"pipeline_splits": ["layer2", "layer3", "layer4"], "fsdp_blocks": ["BasicBlock", "Bottleneck"]}
    assert vit["fsdp_blocks"] == ["Block"]


def test_architecture_without_plan_fails_before_launch(host, tmp_path):
    from bestiary.engine.config import RunConfig
    from bestiary.engine.trainer import Trainer
    from bestiary.errors import ConfigError

    cfg = RunConfig(arch="toy_mlp", dataset="blobs", strategy="tensor", run_dir=str(tmp_path / "run"))
    with pytest.raises(ConfigError) as info:
        Trainer(cfg)
    usable = ", ".join(s.name for s in host.registry.table("strategies") if s.metadata.get("requires") is None)
    archs = ", ".join(a.name for a in host.registry.table("architectures") if "tensor_plan" in a.metadata.get("parallel", {}))
    assert str(info.value) == (
        "architecture 'toy_mlp' cannot use strategy 'tensor': it declares no tensor layout (a 'tensor' or "
        f"'tensor_*' key in its metadata['parallel']); strategies it can use: {usable}; architectures that "
        f"declare one: {archs}"
    )
    assert "single" in usable and "pipeline" not in usable
    assert "par_mlp" in archs and "vit_tiny_patch16_224" in archs
    assert not (tmp_path / "run").exists()
    # resnets can be pipelined but not tensor-split
    with pytest.raises(ConfigError, match="architecture 'resnet18' cannot use strategy 'tensor'.*strategies it can use: .*pipeline"):
        Trainer(cfg.replace(arch="resnet18"))


def test_resolve_hands_the_layout_to_the_strategy(host):
    from bestiary.engine.config import RunConfig
    from bestiary.engine.run import resolve

    parts = resolve(RunConfig(arch="par_mlp", dataset="blobs", strategy="pipeline"))
    assert parts.strategy.defaults["parallel"] == parzoo.PARALLEL
    assert parts.strategy.qualified_name == "parallel:pipeline" or parts.strategy.name == "pipeline"


def test_expand_plan_and_choose_splits():
    import timm

    from bestiary.plugins.parallel.pipeline import choose_splits
    from bestiary.plugins.parallel.tensor import expand_plan

    vit = timm.create_model("vit_tiny_patch16_224", img_size=32, patch_size=8, depth=3, num_classes=3)
    plan = expand_plan(vit, {"blocks.*.attn.qkv": "colwise", "blocks.*.mlp.fc2": "rowwise"})
    assert plan == {"blocks.0.attn.qkv": "colwise", "blocks.1.attn.qkv": "colwise", "blocks.2.attn.qkv": "colwise",
                    "blocks.0.mlp.fc2": "rowwise", "blocks.1.mlp.fc2": "rowwise", "blocks.2.mlp.fc2": "rowwise"}
    with pytest.raises(ValueError, match="matches no module"):
        expand_plan(vit, {"layers.*.fc": "colwise"})
    with pytest.raises(ValueError, match="style 'diagonal'"):
        expand_plan(vit, {"head": "diagonal"})
    splits = [f"blocks.{i}" for i in range(1, 12)]  # declared for depth 12; the model has 3 blocks
    assert choose_splits(vit, splits, 2) == ["blocks.1"]
    assert choose_splits(vit, splits, 3) == ["blocks.1", "blocks.2"]
    with pytest.raises(ValueError, match="at most 3 processes"):
        choose_splits(vit, splits, 4)
    resnet = timm.create_model("resnet18", num_classes=3)
    assert choose_splits(resnet, ["layer2", "layer3", "layer4"], 2) == ["layer3"]
    assert choose_splits(resnet, ["layer2", "layer3", "layer4"], 4) == ["layer2", "layer3", "layer4"]


def test_microbatch_choice():
    from bestiary.plugins.parallel.pipeline import PipelineStrategy

    s = PipelineStrategy(parallel=parzoo.PARALLEL, schedule="1f1b", n_microbatches=4)
    s.world_size = 2  # as setup finds it under torchrun with 2 processes
    assert s._microbatches(16) == (4, "1f1b")
    assert s._microbatches(6) == (3, "1f1b")  # largest divisor: micro-batches must be equal
    assert s._microbatches(7) == (1, "gpipe")  # 1f1b needs at least one micro-batch per stage
    with pytest.raises(ValueError, match="schedule 'zigzag'"):
        PipelineStrategy(parallel=parzoo.PARALLEL, schedule="zigzag")
    with pytest.raises(ValueError, match="split points"):
        PipelineStrategy(parallel={"tensor_plan": {"1": "colwise"}})


# -- real torchrun -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def launched(tmp_path_factory):
    """One torchrun launch of worker.py (2 processes): tensor and pipeline runs, micro-batch losses."""
    out = tmp_path_factory.mktemp("parallel")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(name, None)
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
                           str(HERE / "worker.py"), str(out)], env=env, capture_output=True, text=True, timeout=240, check=False)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return out, [json.loads((out / f"rank{r}.json").read_text()) for r in range(2)]


def _single(tmp_path: Path, name: str):
    from safetensors.torch import load_file

    from bestiary.engine.trainer import train

    sys.path.insert(0, str(HERE))
    import torch
    from worker import config

    summary = train(config(tmp_path, name, "single"))
    reference = load_file(str(tmp_path / name / "model" / "model.safetensors"))
    torch.manual_seed(config(tmp_path, name, "single").seed)  # the trainer's initial weights: the step moved them
    initial = parzoo.par_mlp().state_dict()
    assert max(float((reference[k] - initial[k]).abs().max()) for k in initial) > 1e-3
    return summary, reference


def _compare(out: Path, name: str, reference: dict, tol: float) -> None:
    from safetensors.torch import load_file

    got = load_file(str(out / name / "model" / "model.safetensors"))
    assert got.keys() == reference.keys()
    for k, want in reference.items():
        assert got[k].shape == want.shape, k
        assert float((got[k] - want).abs().max()) <= tol, k


@pytest.mark.slow
def test_tensor_one_step_matches_one_process(host, launched, tmp_path):
    out, ranks = launched
    summary, reference = _single(tmp_path, "single")
    _compare(out, "tensor", reference, 1e-4)
    for r in ranks:  # both ranks report the same evaluation, counted once
        assert r["tensor"]["loss"] == pytest.approx(summary["final"]["loss"], abs=1e-4)
        assert r["tensor"]["accuracy"] == summary["final"]["accuracy"]
    resolved = json.loads((out / "tensor" / "config.json").read_text())["resolved"]
    assert resolved["strategy"].endswith(":tensor")
    # the true process count, and how the strategy used them: one replica split over 2 processes
    assert resolved["world_size"] == 2
    assert resolved["topology"] == {"world_size": 2, "rank": 0, "dp_size": 1, "dp_rank": 0, "tp_size": 2,
                                    "pp_size": 1, "local_rank": 0}


@pytest.mark.slow
def test_pipeline_one_step_matches_one_process(host, launched, tmp_path):
    out, ranks = launched
    summary, reference = _single(tmp_path, "single")
    _compare(out, "pipeline", reference, 1e-5)
    for r in ranks:
        assert r["pipeline"]["loss"] == pytest.approx(summary["final"]["loss"], abs=1e-5)
        assert r["pipeline"]["accuracy"] == summary["final"]["accuracy"]
    resolved = json.loads((out / "pipeline" / "config.json").read_text())["resolved"]
    assert resolved["world_size"] == 2
    assert resolved["topology"] == {"world_size": 2, "rank": 0, "dp_size": 1, "dp_rank": 0, "tp_size": 1,
                                    "pp_size": 2, "local_rank": 0}


@pytest.mark.slow
def test_pipeline_trains_a_forecaster_on_dict_batches(host, launched, tmp_path):
    """The forecasting task cuts its dict batches; the model's dict in and dict out cross the stages."""
    from safetensors.torch import load_file
    from worker import forecast_config

    from bestiary.engine.trainer import train

    out, ranks = launched
    summary = train(forecast_config(tmp_path, "single_forecast", "single"))
    reference = load_file(str(tmp_path / "single_forecast" / "model" / "model.safetensors"))
    import torch

    torch.manual_seed(forecast_config(tmp_path, "x", "single").seed)
    initial = parzoo.par_forecaster().state_dict()
    assert max(float((reference[k] - initial[k]).abs().max()) for k in initial) > 1e-4  # the steps moved it
    _compare(out, "pipeline_forecast", reference, 1e-5)
    for r in ranks:
        for name in ("loss", "mae", "rmse"):
            assert r["pipeline_forecast"][name] == pytest.approx(summary["final"][name], abs=1e-5), name
    saved = json.loads((out / "pipeline_forecast" / "config.json").read_text())["resolved"]
    assert saved["world_size"] == 2 and saved["topology"]["pp_size"] == 2


@pytest.mark.slow
def test_tensor_vit_one_step_matches_one_process(launched):
    _, ranks = launched
    for r in ranks:  # the vision entry's own plan on a 2-block ViT, one SGD step
        assert r["vit"]["loss_err"] <= 1e-5
        assert r["vit"]["param_err"] <= 1e-4
        assert r["vit"]["sharded"] > 0


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["tensor", "pipeline"])
def test_checkpoint_round_trip(launched, kind):
    _, ranks = launched
    for r in ranks:  # whole tensors saved by rank 0, loaded back into slices or stages, AdamW state too
        assert r[f"ckpt_{kind}"]["extra"] == {"step": 1}
        assert r[f"ckpt_{kind}"]["state_err"] == 0.0
        assert r[f"ckpt_{kind}"]["after_step_err"] <= 1e-6


@pytest.mark.slow
@pytest.mark.parametrize("schedule", ["gpipe", "1f1b"])
def test_pipeline_microbatch_losses_match_unsplit_model(launched, schedule):
    _, ranks = launched
    last = ranks[-1][schedule]
    assert len(last["losses"]) == 4
    assert max(abs(a - b) for a, b in zip(last["losses"], last["expected"])) <= 1e-5
    for r in ranks:  # the whole batch's loss reaches every rank; each stage's gradients are the unsplit ones
        assert r[schedule]["loss"] == pytest.approx(r[schedule]["expected_loss"], abs=1e-5)
        assert r[schedule]["grad_err"] <= 1e-5
    assert set(ranks[0][schedule]["own"]).isdisjoint(ranks[1][schedule]["own"])


# -- 2-D: tensor parallel inside data-parallel groups (dp=2, tp=2) -----------------------------


def test_tensor_dp_must_divide_the_processes(monkeypatch):
    from bestiary.plugins.parallel.tensor import TensorParallelStrategy, mesh_shape

    assert mesh_shape(4, 1) == (1, 4)
    assert mesh_shape(4, 2) == (2, 2)
    assert mesh_shape(6, 3) == (3, 2)
    with pytest.raises(ValueError, match=r"dp=4 does not divide the 6 processes; choose dp among 1, 2, 3, 6"):
        mesh_shape(6, 4)
    s = TensorParallelStrategy(parallel=parzoo.PARALLEL, dp="2")  # as --set strategy_options.dp=2 may hand it
    assert s.dp == 2
    monkeypatch.setenv("WORLD_SIZE", "3")
    with pytest.raises(ValueError, match=r"dp=2 does not divide the 3 processes"):
        s.setup("cpu")  # fails before joining any process group
    import torch.distributed as dist

    assert not dist.is_initialized()
    with pytest.raises(ValueError, match="dp=0 must be at least 1"):
        TensorParallelStrategy(parallel=parzoo.PARALLEL, dp=0)
    with pytest.raises(ValueError, match="dp='two' is not a whole number"):
        TensorParallelStrategy(parallel=parzoo.PARALLEL, dp="two")


@pytest.fixture(scope="module")
def launched_2d(tmp_path_factory):
    """One torchrun launch of worker2d.py with 4 processes: a (dp=2, tp=2) mesh."""
    out = tmp_path_factory.mktemp("parallel2d")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(name, None)
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "4",
                           str(HERE / "worker2d.py"), str(out)], env=env, capture_output=True, text=True, timeout=240,
                          check=False)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return out, [json.loads((out / f"rank{r}.json").read_text()) for r in range(4)]


@pytest.mark.slow
def test_tensor_2d_matches_one_process_on_the_global_batch(host, launched_2d, tmp_path):
    import worker2d
    from safetensors.torch import load_file

    from bestiary.engine.trainer import train

    out, ranks = launched_2d
    summary = train(worker2d.config(tmp_path, "single", "single", batch_size=2 * worker2d.BATCH))
    reference = load_file(str(tmp_path / "single" / "model" / "model.safetensors"))
    _compare(out, "tensor2d", reference, 1e-4)
    for r in ranks:  # every rank reports the evaluation of the whole split, each sample counted once
        assert r["final"]["loss"] == pytest.approx(summary["final"]["loss"], abs=1e-4)
        assert r["final"]["accuracy"] == summary["final"]["accuracy"]
    saved = json.loads((out / "tensor2d" / "config.json").read_text())
    assert saved["resolved"]["strategy"].endswith(":tensor")
    assert saved["resolved"]["world_size"] == 4
    assert saved["resolved"]["topology"] == {"world_size": 4, "rank": 0, "dp_size": 2, "dp_rank": 0, "tp_size": 2,
                                             "pp_size": 1, "local_rank": 0}
    assert saved["config"]["strategy_options"] == {"dp": 2}


@pytest.mark.slow
def test_tensor_2d_vit_and_checkpoint(launched_2d):
    _, ranks = launched_2d
    for r in ranks:
        # the ViT entry's plan and fsdp blocks: weights split over tp, then sharded over dp
        assert r["vit"]["param_err"] <= 1e-4
        assert "(_StridedShard(dim=0, sf=2), Shard(dim=0))" in r["vit"]["placements"]  # colwise, then FSDP
        assert "(Shard(dim=0), Shard(dim=1))" in r["vit"]["placements"]  # rowwise, then FSDP
        # whole tensors saved by rank 0, loaded back into 2-D shards, AdamW state too
        assert r["ckpt"]["extra"] == {"step": 1}
        assert r["ckpt"]["state_err"] == 0.0
        assert r["ckpt"]["after_step_err"] <= 1e-6
