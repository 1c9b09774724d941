"""The topology strategies give, the readers that use it (loader, reductions), and tasks cutting
their own batches into micro-batches, fed through the pipeline strategy. No torchrun here: rank
threads or a group of one; test_tensor_pipeline.py runs the real processes."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent / "engine")]

import parzoo
import toyzoo

import bestiary
from bestiary.engine.topology import Topology


@pytest.fixture
def host():
    h = bestiary.reset_host(bestiary.PluginHost(autoload=False))
    h.add_plugin(toyzoo, "toyzoo")
    h.add_plugin(parzoo, "parzoo")
    yield h
    bestiary.reset_host()


# -- the value ----------------------------------------------------------------------------------


def test_topology_degrees_must_multiply_to_the_world_size():
    t = Topology(world_size=4, rank=3, dp_size=2, dp_rank=1, tp_size=2, local_rank=3)
    assert t.model_parallel_size == 2 and not t.is_main and t.is_distributed
    assert t.as_dict() == {"world_size": 4, "rank": 3, "dp_size": 2, "dp_rank": 1, "tp_size": 2, "pp_size": 1,
                           "local_rank": 3}
    with pytest.raises(ValueError) as info:
        Topology(world_size=6, dp_size=2, tp_size=2)
    message = str(info.value)
    assert message == ("topology dp 2 x tp 2 x pp 1 = 4 processes, but the run has 6; start as many processes "
                       "as the degrees multiply to (--nproc-per-node) or change the strategy's degrees "
                       "(--set strategy_options.dp=N)")
    assert "\n" not in message
    with pytest.raises(ValueError, match=r"topology rank=2 is outside 0\.\.1; .*torchrun"):
        Topology(world_size=2, rank=2, dp_size=2)
    with pytest.raises(ValueError, match=r"topology dp_rank=1 is outside 0\.\.0"):
        Topology(world_size=2, dp_size=1, dp_rank=1, pp_size=2)
    with pytest.raises(ValueError, match="pp_size=0 must be a whole number of at least 1"):
        Topology(pp_size=0)
    with pytest.raises(AttributeError):
        t.rank = 0  # type: ignore[misc]  # frozen: readers can keep it
    assert Topology().is_main and not Topology().is_distributed
    assert Topology.data_parallel(3, 2, 0) == Topology(world_size=3, rank=2, dp_size=3, dp_rank=2)


def test_strategies_keep_the_true_world_size_and_give_their_layout():
    import torch

    from bestiary.engine.strategy import Strategy
    from bestiary.plugins.parallel.ddp import DDPStrategy
    from bestiary.plugins.parallel.pipeline import PipelineStrategy
    from bestiary.plugins.parallel.tensor import TensorParallelStrategy

    assert Strategy().topology == Topology()
    ddp = DDPStrategy()
    ddp.rank, ddp.world_size = 1, 2  # what setup reads from torchrun's environment
    assert ddp.topology == Topology(world_size=2, rank=1, dp_size=2, dp_rank=1)
    pipe = PipelineStrategy(parallel=parzoo.PARALLEL)
    pipe.rank, pipe.world_size, pipe.device = 1, 2, torch.device("cpu")
    assert pipe.topology == Topology(world_size=2, rank=1, dp_size=1, dp_rank=0, pp_size=2)
    assert pipe.world_size == 2 and pipe.is_last
    assert TensorParallelStrategy(parallel=parzoo.PARALLEL, dp=2).topology == Topology()  # before setup: one process


def test_loader_shards_by_the_data_parallel_rank():
    import torch

    from bestiary.plugins.parallel.ddp import DDPStrategy
    from bestiary.plugins.parallel.pipeline import PipelineStrategy

    data = torch.utils.data.TensorDataset(torch.arange(12.0))

    def seen(s) -> list[float]:
        return [float(v) for (b,) in s.loader(data, batch_size=4, shuffle=True, seed=0) for v in b]

    ddp = [DDPStrategy() for _ in range(2)]
    pipe = [PipelineStrategy(parallel=parzoo.PARALLEL) for _ in range(2)]
    for rank in range(2):
        ddp[rank].rank, ddp[rank].world_size = rank, 2
        pipe[rank].rank, pipe[rank].world_size = rank, 2
    halves = [seen(s) for s in ddp]
    assert sorted(halves[0] + halves[1]) == [float(i) for i in range(12)]  # each replica its half
    whole = [seen(s) for s in pipe]
    assert whole[0] == whole[1] and sorted(whole[0]) == [float(i) for i in range(12)]  # every stage the whole


def test_reductions_count_each_data_parallel_replica_once():
    import torch
    from test_fsdp import run_threads

    from bestiary.plugins.parallel.ddp import DDPStrategy
    from bestiary.plugins.parallel.pipeline import PipelineStrategy

    def stats(cls, replica_of):
        def fn(rank: int):
            s = DDPStrategy() if cls == "ddp" else PipelineStrategy(parallel=parzoo.PARALLEL)
            s.rank, s.world_size, s.device = rank, 4, torch.device("cpu")
            mine = torch.tensor([float(replica_of(rank) + 1), 10.0], dtype=torch.float64)
            rows = torch.full((replica_of(rank) + 1, 2), float(replica_of(rank)), dtype=torch.float64)
            return s.reduce(mine).tolist(), s.reduce(mine, "mean").tolist(), s.reduce(mine, "max").tolist(), \
                s.gather(rows)[:, 0].tolist()
        return run_threads(4, fn)

    # ddp: 4 replicas with their own statistics, summed
    for got in stats("ddp", lambda r: r):
        assert got == ([10.0, 40.0], [2.5, 10.0], [4.0, 10.0], [0.0, 1.0, 1.0, 2.0, 2.0, 2.0, 3.0, 3.0, 3.0, 3.0])
    # pipeline: 4 stages of one replica hold the same statistics: counted once, rows once
    for got in stats("pipeline", lambda r: 0):
        assert got == ([1.0, 10.0], [1.0, 10.0], [1.0, 10.0], [0.0])


# -- tasks cut their batches --------------------------------------------------------------------


def test_classification_splits_real_batches(host):
    import torch

    task = bestiary.get_entry("tasks", "image-classification").build()
    data = bestiary.get_entry("datasets", "blobs").build()
    batch = next(iter(torch.utils.data.DataLoader(data.train, batch_size=10)))
    parts = task.split_batch(batch, 3)
    assert [task.batch_size(p) for p in parts] == [4, 3, 3]  # torch.tensor_split's sizes
    assert all(isinstance(p, tuple) and len(p) == 2 for p in parts)
    assert torch.equal(torch.cat([p[0] for p in parts]), batch[0])
    assert torch.equal(torch.cat([p[1] for p in parts]), batch[1])
    model = toyzoo.toy_mlp(dropout=0.0)
    with torch.no_grad():
        whole, _ = task.loss(model, batch)
        parts = [float(task.loss(model, p)[0]) for p in task.split_batch(batch, 2)]
    assert float(whole) == pytest.approx(sum(parts) / 2, abs=1e-6)  # equal halves: the mean of their losses
    with pytest.raises(ValueError, match="cannot cut a batch of 10 images into 11 micro-batches"):
        task.split_batch(batch, 11)


def test_forecasting_splits_real_dict_batches(host):
    import torch

    task = bestiary.get_entry("tasks", "forecasting").build()
    data = bestiary.get_entry("datasets", "sine").build()
    batch = next(iter(torch.utils.data.DataLoader(data.train, batch_size=8)))
    parts = task.split_batch(batch, 4)
    assert [task.batch_size(p) for p in parts] == [2, 2, 2, 2]
    for key, value in batch.items():
        assert torch.equal(torch.cat([p[key] for p in parts]), value), key
    # a batch for `bestiary predict` carries per-window lists and shared values too
    batch = {**batch, "item_id": [f"s{i}" for i in range(8)], "levels": [0.1, 0.5, 0.9]}
    parts = task.split_batch(batch, 3)
    assert [p["item_id"] for p in parts] == [["s0", "s1", "s2"], ["s3", "s4", "s5"], ["s6", "s7"]]
    assert all(p["levels"] == [0.1, 0.5, 0.9] for p in parts)
    assert all(p["past_target"].shape[0] == len(p["item_id"]) for p in parts)


def test_base_task_split_handles_nested_batches():
    import torch

    from bestiary.engine.tasks import split_samples

    batch = {"x": torch.arange(6).view(6, 1), "pair": (torch.arange(6), torch.ones(6, 2)), "ids": list("abcdef"),
             "scale": torch.tensor(2.0), "table": torch.zeros(3, 3)}
    a, b = split_samples(batch, 2)
    assert a["x"].flatten().tolist() == [0, 1, 2] and b["pair"][0].tolist() == [3, 4, 5]
    assert isinstance(a["pair"], tuple) and b["pair"][1].shape == (3, 2)
    assert a["ids"] == ["a", "b", "c"] and b["ids"] == ["d", "e", "f"]
    assert a["scale"] is batch["scale"] and b["table"] is batch["table"]  # not per sample: shared
    with pytest.raises(ValueError, match="cannot cut a batch of 6 samples into 7"):
        split_samples(batch, 7)


def test_pipeline_strategy_trains_on_dict_batches_in_a_group_of_one(host, monkeypatch):
    """A one-stage pipeline in this process: the forecasting task's dict batch is cut by the task,
    flattened for the stage and the dict output rebuilt; loss and gradients equal the unsplit model."""
    import torch

    from bestiary.plugins.parallel.pipeline import PipelineStrategy

    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(name, raising=False)
    task = bestiary.get_entry("tasks", "forecasting").build()
    data = bestiary.get_entry("datasets", "sine").build()
    batch = next(iter(torch.utils.data.DataLoader(data.train, batch_size=8)))
    torch.manual_seed(0)
    model, reference = parzoo.par_forecaster(), parzoo.par_forecaster()
    reference.load_state_dict(model.state_dict())
    s = PipelineStrategy(parallel=parzoo.FORECAST_PARALLEL, n_microbatches=4)
    s.setup("cpu")
    try:
        wrapped = s.prepare_model(model)
        loss, _ = s.forward_backward(wrapped, batch, task.loss, autocast=torch.autocast("cpu", enabled=False),
                                     scale=1.0, split=task.split_batch)
        assert len(s.last_losses) == 4
        with torch.no_grad():
            expected = [float(task.loss(reference, p)[0]) for p in task.split_batch(batch, 4)]
        assert [float(v) for v in s.last_losses] == pytest.approx(expected, abs=1e-6)
        whole, _ = task.loss(reference, batch)
        whole.backward()
        assert float(loss) == pytest.approx(float(whole.detach()), abs=1e-6)
        grads = dict(reference.named_parameters())
        for name, p in model.named_parameters():
            assert float((p.grad - grads[name].grad).abs().max()) <= 1e-6, name
        assert s.topology == Topology(world_size=1, rank=0, dp_size=1, dp_rank=0, pp_size=1)
    finally:
        s.teardown()


def test_one_process_run_records_its_topology(host, tmp_path):
    import json

    from bestiary.engine.config import RunConfig
    from bestiary.engine.trainer import train

    train(RunConfig(arch="toy_mlp", dataset="blobs", max_steps=1, batch_size=8, quiet=True, run_dir=str(tmp_path / "run")))
    resolved = json.loads((tmp_path / "run" / "config.json").read_text())["resolved"]
    assert resolved["world_size"] == 1
    assert resolved["topology"] == Topology().as_dict()
