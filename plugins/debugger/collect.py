"""Collection inside the training loop: cheap on every step, thorough every ``debug_every`` steps.

On every step only the host clock is read: the time spent waiting for the data loader and the time
the step took. On a collection step, and only then, the collector attaches forward hooks (to the
model, for the forward time, and to activation modules), reads the gradients and weights before the
optimizer step and the weights after it, and reduces everything on the device into one vector that
crosses to the host in a single transfer. The hooks are removed as soon as the step ends.

A collection record (one line of ``RUN_DIR/debug/stats.jsonl``) holds:

- ``step``, ``loss`` (of the collected step's last micro-batch);
- ``timing``: ``steps`` (``[step, data wait s, compute s]`` for each step since the previous record,
  collection steps left out since they are slower on purpose) and, for this step, ``data``,
  ``forward``, ``backward`` and ``optimizer`` in seconds;
- ``system``: see :func:`bestiary.debug.system.sample`;
- ``gradients`` and ``weights``: parameter name -> ``mean``, ``std``, ``norm`` (L2), ``rms``,
  ``mean_abs`` and ``max_abs`` (NaN or Inf anywhere in the tensor makes ``norm`` and ``max_abs`` so);
- ``updates``: parameter name -> ``||w_after - w_before|| / ||w_before||``;
- ``activations``: module name (``name#2`` for a second call in one forward) -> ``mean``, ``std``,
  ``min``, ``max``, ``norm``, ``zeros`` (fraction of exact zeros) of its output, ``kind`` (``relu``,
  ``sigmoid``, ``tanh``, ``other``) and ``dead`` (fraction of channels never positive in the batch,
  ReLU family) or ``saturated`` (fraction of outputs within 1 % of the bounds, sigmoid and tanh).
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Iterator
from typing import Any

import torch  # the collector reduces tensors on their device; only runs import this module

from .system import SystemSampler

#: Reduced on the device for activations; the host derives ``mean``, ``std`` and ``norm`` from them.
STATS = ("sum", "sumsq", "min", "max", "zeros")
#: Reduced on the device for parameters and gradients, all tensors at once (fused ``_foreach`` norms).
PARAM_STATS = ("sum", "norm", "abs_sum", "max_abs")
#: Activation module class name -> family; families decide the extra statistic.
ACTIVATIONS = {
    "ReLU": "relu", "ReLU6": "relu", "Threshold": "relu",
    "Sigmoid": "sigmoid", "Hardsigmoid": "sigmoid", "LogSigmoid": "other",
    "Tanh": "tanh", "Hardtanh": "tanh", "Softsign": "tanh",
    "GELU": "other", "SiLU": "other", "Mish": "other", "ELU": "other", "LeakyReLU": "other",
    "PReLU": "other", "SELU": "other", "CELU": "other", "Softplus": "other",
}
SATURATION_MARGIN = 0.01


def _stats(x: torch.Tensor) -> torch.Tensor:
    """``STATS`` of ``x`` as one float32 vector, computed on its device without a host sync."""
    f = x.detach().float().reshape(-1)
    lo, hi = torch.aminmax(f)
    norm = torch.linalg.vector_norm(f)
    zeros = (f == 0).sum().float()
    return torch.stack([f.sum(), norm * norm, lo, hi, zeros])


def _param_stats(tensors: list[torch.Tensor]) -> torch.Tensor:
    """``PARAM_STATS`` of each tensor, as a ``[len(tensors), 4]`` matrix. The fused norms read each
    tensor once per norm; standard deviations and means are derived on the host from sums and norms
    (no Welford pass, no per-tensor temporaries)."""
    ts = [t.detach() for t in tensors]
    l2 = torch._foreach_norm(ts, 2)
    l1 = torch._foreach_norm(ts, 1)
    linf = torch._foreach_norm(ts, float("inf"))
    sums = [t.sum() for t in ts]
    return torch.stack([torch.stack(list(col)).float() for col in (sums, l2, l1, linf)], dim=1)


def _extra(x: torch.Tensor, family: str) -> torch.Tensor:
    f = x.detach().float()
    if family == "relu":
        dims = [d for d in range(f.dim()) if d != 1] if f.dim() >= 2 else [0]
        unit_max = f.amax(dim=dims) if f.dim() >= 2 else f
        return (unit_max <= 0).float().mean().reshape(1)
    low, high = (0.0, 1.0) if family == "sigmoid" else (-1.0, 1.0)
    margin = SATURATION_MARGIN * (high - low)
    return ((f <= low + margin) | (f >= high - margin)).float().mean().reshape(1)


class Collector:
    """Collects statistics for rules; driven by the trainer (see the module docstring).

    :param model: the (wrapped) model.
    :param every: collect every this many optimizer steps (and at step 1).
    :param needs: what to collect beyond timing and system figures (see :data:`bestiary.debug.rule.NEEDS`).
    :param device: the run's device.
    :param start_step: the step a resumed run continues from.
    :param hooks: attach forward hooks (activations, forward time); off for compiled models, where
        a hook added between steps would force a recompilation.
    """

    def __init__(self, model: torch.nn.Module, *, every: int, needs: Iterable[str], device: torch.device,
                 start_step: int = 0, hooks: bool = True) -> None:
        self.model, self.every, self.needs, self.device = model, every, set(needs), device
        self.hooks = hooks
        self.step = start_step
        self.cuda = device.type == "cuda"
        self.system = SystemSampler(device)
        self.params = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
        self._handles: list[Any] = []
        self._keys: list[tuple[str, str, tuple[str, ...]]] = []
        self._values: list[torch.Tensor] = []
        self._calls: dict[str, int] = {}
        self._steps: list[list[float]] = []
        self._collecting = False
        self._micro = 0
        self._ready = self._data = self._start = 0.0
        self._t: dict[str, float] = {}
        self._before: list[torch.Tensor] | None = None
        self._buffer: list[torch.Tensor] | None = None

    def collects(self, step: int) -> bool:
        """Whether optimizer step ``step`` (counted from 1) is a collection step."""
        return step == 1 or step % self.every == 0

    # -- the hot path: a few clock reads per step ---------------------------------------------------

    def timed(self, loader: Iterable[Any]) -> Iterator[Any]:
        """``loader``'s batches, timing the wait for each one."""
        it = iter(loader)
        while True:
            asked = time.perf_counter()
            try:
                batch = next(it)
            except StopIteration:
                return
            self._ready = time.perf_counter()
            if self._micro == 0:
                self._data, self._start = 0.0, asked
                if self.collects(self.step + 1):
                    self._attach()
            self._data += self._ready - asked
            self._micro += 1
            yield batch

    def after_backward(self, loss: torch.Tensor) -> None:
        """Called once per optimizer step, after the last backward and before the optimizer step."""
        if not self._collecting:
            return
        self._mark("backward_end")
        self._detach()
        self._add("loss", "", ("value",), loss.detach().float().reshape(1))
        grads = [(n, p.grad) for n, p in self.params if p.grad is not None]
        if "gradients" in self.needs and grads:
            self._add("gradients", tuple(n for n, _ in grads), PARAM_STATS, _param_stats([g for _, g in grads]))
        if "weights" in self.needs or "updates" in self.needs:
            self._add("weights", tuple(n for n, _ in self.params), PARAM_STATS, _param_stats([p for _, p in self.params]))
        if "updates" in self.needs:
            weights = [p.detach() for _, p in self.params]
            if self.cuda:  # the caching allocator makes a fresh copy cheap, and frees it for the run
                self._before = [w.clone() for w in weights]
            else:  # on the CPU, fresh large buffers cost page faults each time: keep one
                if self._buffer is None:
                    self._buffer = [torch.empty_like(w) for w in weights]
                torch._foreach_copy_(self._buffer, weights)
                self._before = self._buffer
        self._mark("optimizer_start")

    def after_step(self) -> dict[str, Any] | None:
        """Called after each optimizer step; the collection record on collection steps, else ``None``."""
        now = time.perf_counter()
        self.step += 1
        self._micro = 0
        if not self._collecting:
            self._steps.append([self.step, self._data, now - self._start - self._data])
            return None
        self._mark("optimizer_end")
        if self._before is not None:
            torch._foreach_sub_(self._before, [p.detach() for _, p in self.params])  # in place: no new buffers
            norms = torch._foreach_norm(self._before)
            self._add("updates", "", tuple(n for n, _ in self.params), torch.stack(list(norms)).float())
            self._before = None
        return self._finish()

    def flush(self) -> dict[str, Any] | None:
        """A timing-only record of the steps since the last collection (at the end of a run), or ``None``."""
        if not self._steps or self._collecting:
            return None
        record = {"step": self.step, "time": time.time(), "timing": {"steps": self._steps}, "system": self.system.sample()}
        self._steps = []
        return record

    # -- collection steps ---------------------------------------------------------------------------

    def _sync(self) -> None:
        if self.cuda:
            torch.cuda.synchronize(self.device)

    def _mark(self, name: str) -> None:
        self._sync()
        self._t[name] = time.perf_counter()

    def _attach(self) -> None:
        self._collecting, self._keys, self._values, self._calls, self._t = True, [], [], {}, {}
        self._numels: dict[str, int] = {}
        if not self.hooks:
            return
        self._handles.append(self.model.register_forward_hook(lambda *_: self._mark("forward_end")))
        if "activations" not in self.needs:
            return
        for name, module in self.model.named_modules():
            family = ACTIVATIONS.get(type(module).__name__)
            if family is not None:
                self._handles.append(module.register_forward_hook(self._activation_hook(name, family)))

    def _activation_hook(self, name: str, family: str) -> Any:
        def hook(module: torch.nn.Module, inputs: Any, output: Any) -> None:
            if not isinstance(output, torch.Tensor) or output.numel() == 0:
                return
            calls = self._calls[name] = self._calls.get(name, 0) + 1
            key = name if calls == 1 else f"{name}#{calls}"  # a module used twice in one forward
            self._numels[key] = output.numel()
            stats = _stats(output)
            if family == "other":
                self._add("activations", key, (*STATS, "kind:" + family), torch.cat([stats, stats.new_zeros(1)]))
            else:
                extra = "dead" if family == "relu" else "saturated"
                self._add("activations", key, (*STATS, extra, "kind:" + family),
                          torch.cat([stats, _extra(output, family), stats.new_zeros(1)]))

        return hook

    def _detach(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []
        self._calls = {}

    def _add(self, group: str, name: Any, fields: tuple[str, ...], values: torch.Tensor) -> None:
        self._keys.append((group, name, fields))
        self._values.append(values.reshape(-1))

    def _finish(self) -> dict[str, Any]:
        self._detach()
        self._collecting = False
        flat = torch.cat(self._values).cpu().tolist() if self._values else []  # the one transfer
        record: dict[str, Any] = {"step": self.step, "time": time.time()}
        pos = 0
        for group, name, fields in self._keys:
            if isinstance(name, tuple):  # one row of fields per parameter
                size = len(name) * len(fields)
                rows = flat[pos:pos + size]
                pos += size
                record[group] = {n: _param_row(dict(zip(fields, rows[i * len(fields):(i + 1) * len(fields)])),
                                               self._sizes[n]) for i, n in enumerate(name)}
                continue
            values = flat[pos:pos + len(fields)]
            pos += len(fields)
            if group == "loss":
                record["loss"] = _num(values[0])
            elif group == "updates":
                weights = record.get("weights", {})
                record["updates"] = {n: _num(v / weights[n]["norm"]) if weights.get(n, {}).get("norm") else None
                                     for n, v in zip(fields, values)}
            else:
                row = {f: v for f, v in zip(fields, values) if not f.startswith("kind:")}
                kind = next((f[5:] for f in fields if f.startswith("kind:")), None)
                record.setdefault(group, {})[name] = _activation_row(row, self._numels.get(name, 1), kind)
        t = self._t
        data = self._data
        compute = {"forward": t.get("forward_end", self._ready) - self._start - data}
        compute["backward"] = t.get("backward_end", 0.0) - t.get("forward_end", self._ready)
        compute["optimizer"] = t.get("optimizer_end", 0.0) - t.get("backward_end", 0.0)
        record["timing"] = {"data": data, **{k: max(v, 0.0) for k, v in compute.items()}, "steps": self._steps}
        self._steps = []
        record["system"] = self.system.sample()
        return record

    @property
    def _sizes(self) -> dict[str, int]:
        if not hasattr(self, "_size_cache"):
            self._size_cache = {n: p.numel() for n, p in self.params}
        return self._size_cache


def _param_row(row: dict[str, float], n: int) -> dict[str, Any]:
    """``mean``, ``std``, ``norm``, ``rms``, ``mean_abs`` and ``max_abs`` of a parameter or gradient."""
    mean, rms = row["sum"] / n, row["norm"] / math.sqrt(n)
    std = math.sqrt(max(rms * rms - mean * mean, 0.0)) if math.isfinite(rms) and math.isfinite(mean) else math.nan
    return {"mean": _num(mean), "std": _num(std), "norm": _num(row["norm"]), "rms": _num(rms),
            "mean_abs": _num(row["abs_sum"] / n), "max_abs": _num(row["max_abs"])}


def _activation_row(row: dict[str, float], n: int, kind: str | None) -> dict[str, Any]:
    mean = row["sum"] / n
    var = row["sumsq"] / n - mean * mean
    std = math.sqrt(max(var, 0.0)) if math.isfinite(var) else math.nan
    out = {"mean": _num(mean), "std": _num(std), "min": _num(row["min"]), "max": _num(row["max"]),
           "norm": _num(math.sqrt(row["sumsq"]) if math.isfinite(row["sumsq"]) else row["sumsq"]),
           "zeros": _num(row["zeros"] / n), "kind": kind}
    for extra in ("dead", "saturated"):
        if extra in row:
            out[extra] = _num(row[extra])
    return out


def _num(v: float) -> float | None:
    """Six significant digits keep records compact; NaN and Inf stay (JSON as written by Python)."""
    if v is None:
        return None
    if math.isfinite(v):
        return float(f"{v:.6g}")
    return v
