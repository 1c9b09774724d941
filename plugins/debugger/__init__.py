"""The ``debugger`` plugin: the built-in training debugger rules, and the live debugger.

A run that names rules (``--rules default``; the options ``rules``, ``debug_every`` and
``rule_options`` that this plugin declares, in the table ``[options.debugger]``) gets a
:class:`~bestiary.plugins.debugger.session.Debugger` at run start; it watches the run through the
engine's public per-step hooks only. Rule names and options are
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
    ("loss_explosion", learning.LossExplosion, "learning",
     "Training loss that jumps by orders of magnitude over its recent level, or turns NaN/Inf"),
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


#: The options table of the debugger (``[options.debugger]``), and the default of ``debug_every``.
TABLE = "debugger"
DEBUG_EVERY = 50


@hookimpl
def add_options(add: Any) -> None:
    add("rules", type="str", table=TABLE, commands=("train", "tune"),
        help=("Training debugger rules to run: default, all or names (comma separated, NAME:stop to end the "
              "run on a finding); see `bestiary list rules` and docs/debugger.md. Default: none."))
    # no declared default: a run without rules keeps no [options.debugger] table
    add("debug_every", type="int", table=TABLE, commands=("train", "tune"),
        help=f"Debugger: collect tensor and system statistics every this many optimizer steps (and at step 1); "
             f"default {DEBUG_EVERY}.")
    add("rule_options", type="dict", table=TABLE, commands=(),
        help="Debugger rule parameters, by rule, e.g. `{vanishing_gradient = {threshold = 1e-8}}`.")


def settings(config: Any) -> tuple[str | None, int, dict[str, Any]]:
    """The run's rules, collection interval and rule parameters, from ``[options.debugger]``.

    Checked here too, since a config made in Python skips the CLI's checks of declared options.
    """
    from bestiary.extend import ConfigError, option_value

    rules = option_value(config, TABLE, "rules")
    every = option_value(config, TABLE, "debug_every", DEBUG_EVERY)
    params = option_value(config, TABLE, "rule_options") or {}
    if rules is not None and not isinstance(rules, str):
        raise ConfigError(f"option debugger.rules takes a string such as 'default', got {rules!r}")
    if isinstance(every, bool) or not isinstance(every, int) or every < 1:
        raise ConfigError(f"option debugger.debug_every must be an integer >= 1, got {every!r} (--debug-every N)")
    if not isinstance(params, dict):
        raise ConfigError(f"option debugger.rule_options takes a table of rule parameters by rule, got {params!r} "
                          "(--set debugger.rule_options.RULE.PARAM=VALUE)")
    return rules, every, params


@hookimpl
def on_run_configure(config: Any, host: Any) -> None:
    rules, _, params = settings(config)
    if rules is not None:
        from bestiary.extend import select_rules  # plain Python: builds the rules to check them

        select_rules(rules, host, params)


@hookimpl
def on_run_start(run: Any) -> None:
    rules, every, params = settings(run.config)
    if rules is None or not run.is_main:  # rules and collection run on the main process only
        return
    from bestiary.extend import select_rules

    from .session import Debugger  # imports torch (the collector): only runs with rules

    built = select_rules(rules, run.host, params)
    if built:
        Debugger(run, run.host, built, every=every, train_set=run.data.split("train"), info=run.data.info,
                 total_steps=run.total_steps)


@hookimpl
def register_rules(register: Any) -> None:
    for name, cls, group, description in RULES:
        register(name, f"{cls.__module__}:{cls.__qualname__}", description=description,
                 tags=("default", group, *(("gpu",) if cls.device == "cuda" else ())), defaults=defaults(cls),
                 metadata={"needs": list(cls.needs), "device": cls.device})
