"""The ``debugger`` plugin: the built-in training debugger rules, and the live debugger.

A run that names rules (``--rules default``, the config's ``rules``, ``rule_options`` and
``debug_every``) gets a :class:`~bestiary.plugins.debugger.session.Debugger` at run start; it
watches the run through the engine's public per-step hooks only. Rule names and options are
checked in ``on_run_configure``, before anything is built.

Each rule's parameters are the keyword arguments of its class, shown as the entry's ``defaults``
(``bestiary info vanishing_gradient``); docs/debugger.md explains what each watches and suggests.
The modules hold plain Python (no torch), so registering them is cheap.
"""

from __future__ import annotations

import inspect
from typing import Any

from bestiary import hookimpl

from . import learning, profiler, tensors

#: (name, class, group, one line) of every built-in rule; all run with ``--rules default``.
RULES: tuple[tuple[str, Any, str, str], ...] = (
    ("vanishing_gradient", tensors.VanishingGradient, "tensors", "Gradients of a layer too small to learn"),
    ("exploding_tensor", tensors.ExplodingTensor, "tensors", "NaN, Inf or huge values in tensors or the loss; stops the run"),
    ("dead_relu", tensors.DeadRelu, "tensors", "ReLU layers whose channels output zero for every sample"),
    ("saturated_activation", tensors.SaturatedActivation, "tensors", "Sigmoid or tanh outputs stuck at their bounds"),
    ("poor_weight_initialization", tensors.PoorWeightInitialization, "tensors",
     "Constant weights, or weights far from the 1/sqrt(fan_in) scale at the start"),
    ("weight_update_ratio", tensors.WeightUpdateRatio, "tensors", "Updates too large or too small for the weights"),
    ("loss_not_decreasing", learning.LossNotDecreasing, "learning", "Training loss that stopped going down"),
    ("overfitting", learning.Overfitting, "learning", "Validation loss far above the training loss"),
    ("overtraining", learning.Overtraining, "learning", "Validation loss no longer improving"),
    ("class_imbalance", learning.ClassImbalance, "learning", "Classes with far fewer training samples than others"),
    ("dataloader_bottleneck", profiler.DataloaderBottleneck, "profiler", "Steps that wait for the data loader"),
    ("step_time_outlier", profiler.StepTimeOutlier, "profiler", "Steps much slower than the usual step"),
    ("low_gpu_utilization", profiler.LowGpuUtilization, "profiler", "A GPU that is mostly idle"),
    ("cpu_bottleneck", profiler.CpuBottleneck, "profiler", "Busy CPUs starving the GPU"),
    ("gpu_memory_growth", profiler.GpuMemoryGrowth, "profiler", "GPU memory that grows step after step"),
    ("batch_size_too_small", profiler.BatchSizeTooSmall, "profiler", "A batch that leaves most of the GPU unused"),
)


def defaults(cls: Any) -> dict[str, Any]:
    """The keyword arguments of a rule class and their defaults."""
    return {n: p.default for n, p in inspect.signature(cls).parameters.items() if p.default is not p.empty}


@hookimpl
def on_run_configure(config: Any, host: Any) -> None:
    if config.rules is not None:
        from bestiary.extend import select_rules  # plain Python: builds the rules to check them

        select_rules(config.rules, host, config.rule_options)


@hookimpl
def on_run_start(run: Any) -> None:
    if run.config.rules is None or not run.is_main:  # rules and collection run on the main process only
        return
    from bestiary.extend import select_rules

    from .session import Debugger  # imports torch (the collector): only runs with rules

    rules = select_rules(run.config.rules, run.host, run.config.rule_options)
    if rules:
        Debugger(run, run.host, rules, train_set=run.data.split("train"), info=run.data.info,
                 total_steps=run.total_steps)


@hookimpl
def register_rules(register: Any) -> None:
    for name, cls, group, description in RULES:
        register(name, f"{cls.__module__}:{cls.__qualname__}", description=description,
                 tags=("default", group, *(("gpu",) if cls.device == "cuda" else ())), defaults=defaults(cls),
                 metadata={"needs": list(cls.needs), "device": cls.device})
