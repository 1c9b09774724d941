"""Started by torchrun from test_tensor_pipeline.py: trains with the tensor and pipeline strategies
and checks pipeline micro-batch losses; writes results as JSON under argv[1]."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch
import torch.distributed as dist

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent / "engine")]

import parzoo
import toyzoo

import bestiary
import bestiary.plugins.parallel
from bestiary.engine.config import RunConfig
from bestiary.engine.trainer import train


def config(out: Path, name: str, strategy: str, **kw):  # shared with the test's references
    return RunConfig(arch="par_mlp", dataset="blobs", strategy=strategy, max_steps=1, batch_size=16, epochs=1,
                     optimizer="sgd", lr=0.1, seed=3, label_smoothing=0.1, clip_grad_norm=0.05, schedule="constant", quiet=True, run_dir=str(out / name), **kw)


def forecast_config(out: Path, name: str, strategy: str):  # shared with the test's reference
    return RunConfig(arch="par_forecaster", dataset="sine", strategy=strategy, max_steps=2, batch_size=8, epochs=1,
                     optimizer="sgd", lr=0.05, seed=5, schedule="constant", quiet=True, run_dir=str(out / name))


def micro_losses(schedule: str) -> dict:
    from bestiary.plugins.parallel.pipeline import PipelineStrategy

    torch.manual_seed(0)
    model = parzoo.par_mlp()
    reference = parzoo.par_mlp()
    reference.load_state_dict(model.state_dict())
    s = PipelineStrategy(parallel=parzoo.PARALLEL, schedule=schedule, n_microbatches=4)
    s.setup("cpu")
    wrapped = s.prepare_model(model)
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(12, 1, 4, 4, generator=g), torch.randint(0, 3, (12,), generator=g)
    task = bestiary.get_entry("tasks", "image-classification").build()
    loss, _ = s.forward_backward(wrapped, (x, y), lambda m, b: task.loss(m, b, label_smoothing=0.1),
                                 autocast=torch.autocast("cpu", enabled=False), scale=1.0)
    expected = [float(task.loss(reference, (xm, ym), label_smoothing=0.1)[0]) for xm, ym in zip(x.chunk(4), y.chunk(4))]
    full = task.loss(reference, (x, y), label_smoothing=0.1)[0]
    full.backward()
    own = {n for n, p in model.named_parameters() if p.grad is not None}
    grad_err = max(float((dict(model.named_parameters())[n].grad - dict(reference.named_parameters())[n].grad).abs().max())
                   for n in own)
    return {"losses": [float(v) for v in s.last_losses], "expected": expected, "loss": float(loss),
            "expected_loss": float(full), "grad_err": grad_err, "own": sorted(own)}


def vit_tensor() -> dict:
    """The vision entry's tensor plan on a 2-block ViT: one SGD step against one process."""
    import timm

    from bestiary.plugins.parallel.tensor import TensorParallelStrategy

    plan = bestiary.get_entry("architectures", "vit_tiny_patch16_224").metadata["parallel"]
    torch.manual_seed(0)
    kw = {"img_size": 32, "patch_size": 8, "depth": 2, "num_classes": 3}
    model, reference = timm.create_model("vit_tiny_patch16_224", **kw), timm.create_model("vit_tiny_patch16_224", **kw)
    reference.load_state_dict(model.state_dict())
    s = TensorParallelStrategy(parallel=dict(plan))
    s.setup("cpu")
    wrapped = s.prepare_model(model)
    task = bestiary.get_entry("tasks", "image-classification").build()
    g = torch.Generator().manual_seed(2)
    batch = (torch.randn(4, 3, 32, 32, generator=g), torch.randint(0, 3, (4,), generator=g))
    losses = []
    for m in (wrapped, reference):
        opt = torch.optim.SGD(m.parameters(), lr=0.1)
        loss, _ = task.loss(m, batch)
        loss.backward()
        opt.step()
        losses.append(float(loss))
    got, want = s.model_state(wrapped), reference.state_dict()
    sharded = sum(1 for v in wrapped.state_dict().values() if type(v).__name__ == "DTensor")
    return {"loss_err": abs(losses[0] - losses[1]), "sharded": sharded,
            "param_err": max(float((got[k] - want[k]).abs().max()) for k in want)}


def checkpoint_roundtrip(kind: str, out: Path) -> dict:
    """Save a checkpoint after one AdamW step, load it into a fresh model, compare whole states."""
    from bestiary.plugins.parallel.pipeline import PipelineStrategy
    from bestiary.plugins.parallel.tensor import TensorParallelStrategy

    cls = TensorParallelStrategy if kind == "tensor" else PipelineStrategy
    return roundtrip(cls(parallel=parzoo.PARALLEL), out / f"ckpt-{kind}")


def roundtrip(s, path: Path, clip_grad_norm: float | None = None) -> dict:
    """With strategy ``s``: one AdamW step, save, load into a fresh model; the state error after
    loading and after one more identical step on both (the optimizer state came back too)."""
    s.setup("cpu")
    task = bestiary.get_entry("tasks", "image-classification").build()
    g = torch.Generator().manual_seed(4)
    batch = (torch.randn(8, 1, 4, 4, generator=g), torch.randint(0, 3, (8,), generator=g))
    models, opts = [], []
    for seed in (0, 1):
        torch.manual_seed(seed)
        model = s.prepare_model(parzoo.par_mlp())
        models.append(model)
        opts.append(torch.optim.AdamW(model.parameters(), lr=0.01))

    def step(model, opt):
        s.forward_backward(model, batch, lambda m, b: task.loss(m, b), autocast=torch.autocast("cpu", enabled=False),
                           scale=1.0)
        s.optimizer_step(model, opt, clip_grad_norm=clip_grad_norm)

    def error() -> float:
        a, b = s.model_state(models[0]), s.model_state(models[1])
        return max(float((a[k] - b[k]).abs().max()) for k in a)

    step(models[0], opts[0])
    target = Path(s.broadcast_object(str(path)))
    s.save_checkpoint(target, models[0], opts[0], {"step": 1})
    extra = s.load_checkpoint(target, models[1], opts[1])
    state_err = error()
    for model, opt in zip(models, opts):
        step(model, opt)
    return {"extra": extra, "state_err": state_err, "after_step_err": error()}


def main() -> None:
    out = Path(sys.argv[1])
    dist.init_process_group("gloo")
    host = bestiary.get_host()
    host.add_plugin(toyzoo, "toyzoo")
    host.add_plugin(parzoo, "parzoo")
    results = {"tensor": train(config(out, "tensor", "tensor"))["final"],
               "pipeline": train(config(out, "pipeline", "pipeline"))["final"],
               "pipeline_forecast": train(forecast_config(out, "pipeline_forecast", "pipeline"))["final"],
               "vit": vit_tensor(), "ckpt_tensor": checkpoint_roundtrip("tensor", out),
               "ckpt_pipeline": checkpoint_roundtrip("pipeline", out), "gpipe": micro_losses("gpipe"), "1f1b": micro_losses("1f1b")}
    (out / f"rank{dist.get_rank()}.json").write_text(json.dumps(results))
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
