"""Fully sharded data parallel (FSDP2 ``fully_shard``): each rank holds 1/world of every parameter,
gradient and optimizer moment, and gathers a block's parameters only while it runs.

Blocks are the unit of sharding and of activation checkpointing. They come from the ``blocks``
option (class names or attribute paths), which callers fill from an architecture entry's
``metadata["parallel"]["fsdp_blocks"]`` (:func:`blocks_from_metadata`); without it every child
module that holds parameters is a block. The root is always sharded last.

Checkpoints are torch.distributed.checkpoint folders, so a run saved at one world size resumes at
another: ``dcp/`` (model and optimizer shards), ``extra.safetensors`` + ``extra.json`` (RNG,
scheduler, data position) and ``manifest.json`` (format ``bestiary-checkpoint-dcp/1``, size and
SHA-256 of every file), written to a temporary folder and renamed into place by rank 0. torch
keeps the ``dcp/`` index as a pickle: it is read only through :mod:`.dcpsafe`, which builds
checkpoint metadata classes and nothing else, and the shards' non-tensor values with
``weights_only=True``, so a tampered checkpoint cannot run code.
"""

from __future__ import annotations

import contextlib
import json
import shutil
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import torch  # the strategy shards torch modules; imported only when a run builds it
import torch.distributed.checkpoint as dcp
from safetensors.torch import load_file, save_file
from torch.distributed.checkpoint.state_dict import (
    StateDictOptions,
    get_model_state_dict,
    get_optimizer_state_dict,
    get_state_dict,
    set_model_state_dict,
    set_optimizer_state_dict,
    set_state_dict,
)
from torch.distributed.fsdp import CPUOffloadPolicy, FSDPModule, MixedPrecisionPolicy, fully_shard

from bestiary.extend import CheckpointError, commit_checkpoint, flatten_state, unflatten_state, verify_checkpoint

from .dcpsafe import load as safe_load
from .dcpsafe import read_metadata
from .distributed import DistributedStrategy

FORMAT = "bestiary-checkpoint-dcp/1"
#: ``strategy_options`` the fsdp strategy takes (see :class:`FSDPStrategy`).
OPTIONS = ("mixed_precision", "reduce_dtype", "cpu_offload", "activation_checkpointing", "reshard_after_forward",
           "blocks")
_DTYPES = {"bf16": torch.bfloat16, "bfloat16": torch.bfloat16, "fp32": torch.float32, "float32": torch.float32,
           "fp16": torch.float16, "float16": torch.float16}


def blocks_from_metadata(metadata: Mapping[str, Any]) -> list[str] | None:
    """The block names an architecture entry declares in ``metadata["parallel"]["fsdp_blocks"]``."""
    blocks = (metadata.get("parallel") or {}).get("fsdp_blocks")
    return list(blocks) if blocks else None


def _dtype(name: str | None, option: str) -> torch.dtype | None:
    if name is None:
        return None
    if name not in _DTYPES:
        raise ValueError(f"fsdp option {option}={name!r} is not a dtype; choose one of bf16, fp32, fp16")
    return _DTYPES[name]


def find_blocks(model: torch.nn.Module, blocks: list[str] | None) -> list[tuple[str, torch.nn.Module]]:
    """Modules to shard one by one, as ``(path, module)``, innermost first (FSDP2 shards a module's
    sub-blocks before the module), the root excluded.

    :param blocks: class names (``BasicBlock``) or attribute paths (``layer1``, ``blocks.0``), of
        which at least one must match; ``None``: every direct child that holds parameters.
    """
    if not blocks:
        return [(n, m) for n, m in model.named_children() if any(True for _ in m.parameters())]
    names = dict(model.named_modules())
    found: dict[str, torch.nn.Module] = {}
    for spec in blocks:  # a family declares all its block classes; each model has some of them
        found.update({spec: names[spec]} if spec and spec in names else {
            n: m for n, m in names.items() if n and type(m).__name__ == spec})
    if not found:
        classes = sorted({type(m).__name__ for m in model.modules()})
        raise ValueError(f"fsdp blocks {blocks!r} match no attribute path or class of {type(model).__name__}; "
                         f"classes in the model: {', '.join(classes)}")
    return sorted(found.items(), key=lambda item: -item[0].count("."))


class FSDPStrategy(DistributedStrategy):
    """FSDP2 ``fully_shard`` over all ranks (one mesh dimension).

    :param mixed_precision: ``bf16`` or ``fp32`` parameters in forward and backward (default: the
        parameters' own dtype); shards and optimizer state stay fp32.
    :param reduce_dtype: dtype of gradient reduce-scatter (default: ``mixed_precision``).
    :param cpu_offload: keep shards, gradients and optimizer state in host memory and step the
        optimizer there (for GPU runs; nothing changes on the CPU).
    :param activation_checkpointing: recompute each block's activations in backward.
    :param reshard_after_forward: free gathered parameters after forward (less memory, one more
        all-gather in backward).
    :param blocks: module class names or attribute paths to shard one by one (default: the
        architecture's ``fsdp_blocks``, else every child module that holds parameters).
    :param parallel: the architecture entry's ``metadata["parallel"]``, when the run engine passes it.
    """

    name = "fsdp"

    def __init__(self, parallel: Mapping[str, Any] | None = None, **options: Any) -> None:
        unknown = sorted(set(options) - set(OPTIONS))
        if unknown:
            raise ValueError(f"strategy 'fsdp' has no option {', '.join(map(repr, unknown))}; "
                             f"valid options: {', '.join(OPTIONS)} (set with --set strategy_options.NAME=VALUE)")
        super().__init__()
        self.param_dtype = _dtype(options.get("mixed_precision"), "mixed_precision")
        self.reduce_dtype = _dtype(options.get("reduce_dtype"), "reduce_dtype") or self.param_dtype
        self.cpu_offload = bool(options.get("cpu_offload", False))
        self.activation_checkpointing = bool(options.get("activation_checkpointing", False))
        self.reshard_after_forward = bool(options.get("reshard_after_forward", True))
        blocks = options.get("blocks") or blocks_from_metadata({"parallel": parallel or {}})
        self.blocks = [blocks] if isinstance(blocks, str) else (list(blocks) if blocks else None)

    # -- wrapping -----------------------------------------------------------------------------

    def prepare_model(self, model: torch.nn.Module, *, channels_last: bool = False) -> torch.nn.Module:
        from torch.distributed.device_mesh import init_device_mesh  # needs the process group set up

        model = model.to(self.device)
        if channels_last:
            model = model.to(memory_format=torch.channels_last)
        mesh = init_device_mesh(self.device.type, (self.world_size,))
        kwargs: dict[str, Any] = {"mesh": mesh, "reshard_after_forward": self.reshard_after_forward,
                                  "mp_policy": MixedPrecisionPolicy(param_dtype=self.param_dtype,
                                                                    reduce_dtype=self.reduce_dtype)}
        if self.cpu_offload and self.device.type != "cpu":  # on the CPU the shards are there already
            kwargs["offload_policy"] = CPUOffloadPolicy(pin_memory=self.device.type == "cuda")
        blocks = find_blocks(model, self.blocks)
        for path, block in blocks:
            outermost = not any(path.startswith(f"{other}.") for other, _ in blocks)
            if self.activation_checkpointing and outermost:
                # the composable checkpoint keeps parameter names, so state dicts and checkpoints
                # are the same with and without it, and it runs inside the sharded module's hooks
                from torch.distributed._composable import checkpoint

                checkpoint(block)
            fully_shard(block, **kwargs)
        fully_shard(model, **kwargs)
        return model

    def no_sync(self, model: torch.nn.Module) -> contextlib.AbstractContextManager[Any]:
        return _no_gradient_sync(model)

    def clip_gradients(self, model: torch.nn.Module, max_norm: float) -> torch.Tensor:
        norm = super().clip_gradients(model, max_norm)
        return norm.full_tensor() if hasattr(norm, "full_tensor") else norm  # a DTensor of partial norms

    # -- state --------------------------------------------------------------------------------

    def model_state(self, model: torch.nn.Module) -> dict[str, torch.Tensor]:
        """The whole state dict on rank 0 (on the CPU), empty elsewhere; every rank must call it."""
        state = get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
        return state  # type: ignore[return-value]  # full state dicts hold tensors only

    def load_model_state(self, model: torch.nn.Module, state: dict[str, torch.Tensor]) -> None:
        """Load a whole (unsharded) state dict; every rank passes the same one."""
        # torch replaces the dict's tensors by shards in place: hand it a copy, not the caller's
        set_model_state_dict(model, dict(state), options=StateDictOptions(full_state_dict=True))

    def optimizer_state(self, model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> dict[str, Any]:
        """The whole optimizer state on rank 0 (on the CPU), empty elsewhere; every rank must call it."""
        return get_optimizer_state_dict(model, optimizer, options=StateDictOptions(full_state_dict=True, cpu_offload=True))

    def load_optimizer_state(self, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                             state: dict[str, Any]) -> None:
        set_optimizer_state_dict(model, optimizer, _containers_copied(state),
                                 options=StateDictOptions(full_state_dict=True))

    def save_checkpoint(self, path: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                        extra: dict[str, Any]) -> None:
        path = Path(path)
        tmp = path.with_name(f".{path.name}.tmp-dcp")
        if self.is_main:
            shutil.rmtree(tmp, ignore_errors=True)
            tmp.mkdir(parents=True)
        self.barrier()
        model_sd, optim_sd = get_state_dict(model, optimizer)
        dcp.save({"model": model_sd, "optimizer": optim_sd}, checkpoint_id=str(tmp / "dcp"))
        self.barrier()
        if self.is_main:
            tensors: dict[str, torch.Tensor] = {}
            state = flatten_state(extra, tensors, "extra")
            save_file(tensors, str(tmp / "extra.safetensors"), metadata={"format": FORMAT})
            (tmp / "extra.json").write_text(json.dumps({"extra": state, "world_size": self.world_size}))
            files = sorted(p.relative_to(tmp).as_posix() for p in tmp.rglob("*") if p.is_file())
            commit_checkpoint(tmp, path, files, FORMAT)
        self.barrier()

    def load_checkpoint(self, path: Path, model: torch.nn.Module,
                        optimizer: torch.optim.Optimizer) -> dict[str, Any]:
        path = Path(path)
        problem = None
        if self.is_main:
            try:
                verify(path)
            except CheckpointError as exc:
                problem = str(exc)
        problem = self.broadcast_object(problem)
        if problem is not None:
            raise CheckpointError(problem)
        model_sd, optim_sd = get_state_dict(model, optimizer)
        state: dict[str, Any] = {"model": model_sd, "optimizer": optim_sd}
        safe_load(state, path / "dcp")  # verify() read the index safely; this reads it again the same way
        set_state_dict(model, optimizer, model_state_dict=state["model"], optim_state_dict=state["optimizer"])
        try:
            tensors = load_file(str(path / "extra.safetensors"), device="cpu")
            saved = json.loads((path / "extra.json").read_text())
            return unflatten_state(saved["extra"], tensors)
        except Exception as exc:  # digests matched but the content does not parse: refuse it all the same
            raise CheckpointError(f"checkpoint {path} cannot be read: {exc}") from exc


def verify(path: str | Path) -> None:
    """Raise :class:`CheckpointError` unless ``path`` is a complete fsdp checkpoint matching its manifest."""
    verify_checkpoint(path, fmt=FORMAT, required=("dcp/.metadata", "extra.safetensors", "extra.json"))
    read_metadata(Path(path) / "dcp" / ".metadata")  # refuses anything but checkpoint metadata


def _containers_copied(obj: Any) -> Any:
    """``obj`` with every dict and list copied, the tensors shared."""
    if isinstance(obj, dict):
        return {k: _containers_copied(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_containers_copied(v) for v in obj]
    return obj


@contextlib.contextmanager
def _no_gradient_sync(model: torch.nn.Module) -> Iterator[None]:
    """Accumulate micro-batch gradients unsharded, without reduce-scatter, until the last one."""
    if not isinstance(model, FSDPModule):
        yield
        return
    model.set_requires_gradient_sync(False)
    try:
        yield
    finally:
        model.set_requires_gradient_sync(True)
