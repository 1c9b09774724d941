"""Started by torchrun (4 processes) from test_tensor_pipeline.py: the tensor strategy on a 2-D
(dp=2, tp=2) mesh, trained for a few steps, a 2-block ViT step and a checkpoint round trip; writes
results as JSON under argv[1]."""

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
from worker import roundtrip

import bestiary
import bestiary.plugins.parallel
from bestiary.engine.config import RunConfig
from bestiary.engine.trainer import train

BATCH = 8  # per tensor-parallel group; the one-process reference takes 2 x BATCH


def config(out: Path, name: str, strategy: str, batch_size: int = BATCH, **kw):  # shared with the test's reference
    return RunConfig(arch="par_mlp", dataset="blobs", strategy=strategy, max_steps=3, batch_size=batch_size, epochs=1,
                     optimizer="sgd", lr=0.1, seed=3, label_smoothing=0.1, clip_grad_norm=0.05, schedule="constant",
                     quiet=True, run_dir=str(out / name), **kw)


def vit_2d() -> dict:
    """The vision entry's plan and fsdp blocks on a 2-block ViT: two SGD steps against one process,
    each dp group on its own half of the batch."""
    import timm

    from bestiary.plugins.parallel.tensor import TensorParallelStrategy

    plan = bestiary.get_entry("architectures", "vit_tiny_patch16_224").metadata["parallel"]
    torch.manual_seed(0)
    kw = {"img_size": 32, "patch_size": 8, "depth": 2, "num_classes": 3}
    model, reference = timm.create_model("vit_tiny_patch16_224", **kw), timm.create_model("vit_tiny_patch16_224", **kw)
    reference.load_state_dict(model.state_dict())
    s = TensorParallelStrategy(parallel=dict(plan), dp=2)
    s.setup("cpu")
    wrapped = s.prepare_model(model)
    task = bestiary.get_entry("tasks", "image-classification").build()
    g = torch.Generator().manual_seed(2)
    batches = [(torch.randn(8, 3, 32, 32, generator=g), torch.randint(0, 3, (8,), generator=g)) for _ in range(2)]
    share = s.dp_mesh.get_local_rank()
    opts = [torch.optim.SGD(m.parameters(), lr=0.1) for m in (wrapped, reference)]
    for x, y in batches:
        for m, opt, batch in ((wrapped, opts[0], (x[share::2], y[share::2])), (reference, opts[1], (x, y))):
            loss, _ = task.loss(m, batch)
            loss.backward()
            opt.step()
            opt.zero_grad()
    got, want = s.model_state(wrapped), reference.state_dict()
    placements = sorted({str(v.placements) for v in wrapped.state_dict().values() if hasattr(v, "placements")})
    return {"param_err": max(float((got[k] - want[k]).abs().max()) for k in want), "placements": placements}


def checkpoint_roundtrip(out: Path) -> dict:
    """Save after one AdamW step, load into a fresh 2-D model, compare whole states and one more step."""
    from bestiary.plugins.parallel.tensor import TensorParallelStrategy

    return roundtrip(TensorParallelStrategy(parallel=parzoo.PARALLEL, dp=2), out / "ckpt-2d", clip_grad_norm=1.0)


def main() -> None:
    out = Path(sys.argv[1])
    dist.init_process_group("gloo")
    host = bestiary.get_host()
    host.add_plugin(toyzoo, "toyzoo")
    host.add_plugin(parzoo, "parzoo")
    summary = train(config(out, "tensor2d", "tensor", strategy_options={"dp": 2}))
    results = {"final": summary["final"], "vit": vit_2d(), "ckpt": checkpoint_roundtrip(out)}
    (out / f"rank{dist.get_rank()}.json").write_text(json.dumps(results))
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
