"""Hook specifications: every extension point of bestiary.

A plugin is a module (or any object) with functions marked ``@hookimpl`` whose names match the
specifications below. Built-in plugins live in ``bestiary.plugins``; third-party packages declare
theirs in the entry-point group ``bestiary``::

    [project.entry-points.bestiary]
    myzoo = "myzoo.plugin"

Registration hooks
------------------
Each hook named ``register_<kind>`` adds entries to the registry table ``<kind>``. A plugin creates
a new kind by declaring such a hook through :func:`add_hookspecs` (the CLI lists it with no change);
plugins loaded after it register entries of that kind. The host calls registration hooks once,
lazily, on the first lookup, and passes a ``register`` callback::

    register(name, factory, *, task=None, description="", tags=(), defaults=None,
             search_space=None, metadata=None, namespace=None)

``name`` is lower-snake (``resnet50``); ``factory`` is an import string
``"package.module:attr"`` or a callable that does its heavy imports (torch, timm, ...) inside, so
that registering stays cheap. ``defaults`` are keyword arguments for the factory, ``search_space``
feeds the tuner, ``metadata`` holds static facts (JSON values); ``namespace`` replaces the plugin
name as the prefix of the qualified name. The host validates each entry and
records its provenance (plugin, distribution, version). A registration hook must not import
torch, return nothing, and raise nothing: a plugin whose hook raises, or which registers an
invalid entry, is skipped as a whole and reported by ``bestiary plugins``.

``defaults``, ``search_space`` and ``metadata`` hold JSON values only. A search space maps a run
config field (``lr``, ``weight_decay``, ``batch_size``, ``label_smoothing``) or a factory option
(``model.drop_path_rate``) to a distribution::

    {"lr": {"type": "float", "low": 1e-4, "high": 1e-1, "log": True},
     "batch_size": {"type": "categorical", "choices": [32, 64, 128]},
     "model.depth": {"type": "int", "low": 2, "high": 8, "step": 2}}

Lifecycle and per-step hooks
----------------------------
``on_run_configure`` checks a run's config before anything is built; ``on_run_start``,
``on_step_end`` (log steps), ``on_evaluation_end``, ``on_checkpoint_saved`` and ``on_run_end`` mark
a run's life; ``wrap_train_loader``, ``on_batch_start``, ``before_backward``,
``before_optimizer_step`` and ``on_batch_end`` fire inside the loop, on every batch or step. The
engine calls them on every process of every run, in the order pluggy gives (plugins registered
later first). It looks up once, when ``on_run_start`` has returned, which per-step hooks have
implementations, and never calls the others: a plugin that observes only some runs can register
an object for the run from ``on_run_start`` (and unregister it in ``on_run_end``) so that other
runs pay nothing. Implementations must be cheap (they run inside the training loop)
and must not raise: an exception ends the run as ``failed``. ``run`` is a
:class:`bestiary.extend.RunContext`; check ``run.is_main`` before writing files. A hook that
wants the run to end early (a pruner, a watchdog) calls ``run.request_stop(reason)``: the engine
stops at the next step or evaluation boundary with a checkpoint, the model, status ``stopped`` and
the reason in the summary.

Extension hooks
---------------
``add_hookspecs`` lets a plugin declare hooks of its own (new kinds: a spec for a hook
register_widgets makes a ``widgets`` table), ``add_commands`` adds ``bestiary`` subcommands and
``add_options`` adds options to the commands that start runs, stored in the run config's
``options`` table of the plugin. docs/plugins.md shows all three.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    import click

    from .engine.config import RunConfig
    from .engine.run import RunContext
    from .host import PluginHost, Register
    from .options import AddOption

PROJECT = "bestiary"

#: Marker for hook specifications (used only by bestiary itself).
hookspec = pluggy.HookspecMarker(PROJECT)
#: Marker for hook implementations: ``from bestiary import hookimpl``.
hookimpl = pluggy.HookimplMarker(PROJECT)

#: Prefix that makes a hook a registration hook for the kind named by the rest of its name.
REGISTER_PREFIX = "register_"


@hookspec
def register_architectures(register: Register) -> None:
    """Register model architectures.

    An architecture's factory builds a ``torch.nn.Module`` from keyword arguments (for example
    ``num_classes``, ``in_chans``, ``img_size``) merged over the entry's ``defaults``. Declare the
    ``task`` it solves (``image-classification``, ``forecasting``) so runs pairing it with a
    dataset of another task fail before training starts, and put a ``search_space`` in the entry
    for the tuner.

    :param register: callback adding one entry per call; see the module docstring for its
        arguments.
    :return: nothing; results of this hook are ignored.
    """


@hookspec
def register_datasets(register: Register) -> None:
    """Register datasets.

    A dataset's factory returns the data for a run (its splits and what the task needs to know
    about them, such as the number of classes or the frequency of a series). Datasets ship with
    installed packages or are generated locally: a factory must never download. Declare the
    ``task`` the dataset serves and recommended settings (input size, prediction length) in
    ``metadata``.

    :param register: callback adding one entry per call; see the module docstring for its
        arguments.
    :return: nothing; results of this hook are ignored.
    """


@hookspec
def register_metrics(register: Register) -> None:
    """Register evaluation metrics.

    A metric's factory returns an object that accumulates over batches and computes a value at
    the end, so that evaluating in one go and over many batches agree. Declare the ``task`` it
    applies to and, in ``metadata``, whether larger is better (``{"higher_is_better": true}``,
    ``false``, or ``null`` for a value that is no score): a metric without it is refused, and
    everything that ranks runs reads it there.

    :param register: callback adding one entry per call; see the module docstring for its
        arguments.
    :return: nothing; results of this hook are ignored.
    """


@hookspec
def register_strategies(register: Register) -> None:
    """Register scaling strategies (single process, data parallel, sharded, tensor, pipeline).

    A strategy's factory returns the object that wraps the model, optimizer and data loaders for a
    run, runs a training step, reduces metrics across processes and writes checkpoints. Leave
    ``task`` as ``None``: strategies serve every task. State in ``metadata`` what the strategy
    needs (for example ``{"min_world_size": 2}``).

    :param register: callback adding one entry per call; see the module docstring for its
        arguments.
    :return: nothing; results of this hook are ignored.
    """


@hookspec
def register_benchmarks(register: Register) -> None:
    """Register benchmark suites, for ``bestiary bench list`` and ``bestiary bench run NAME``.

    A suite's factory returns a :class:`bestiary.benchmarks.suite.Suite`; ship the suite as a TOML
    file in the plugin's package data and use the factory ``"bestiary.benchmarks.suite:load_suite"``
    with ``defaults={"package": "myzoo", "resource": "suites/my_suite.toml"}``. A suite names a
    measurement (``quality``, ``throughput``, ``scaling``, ``registry``) and a matrix of
    architectures (names or patterns, so a suite also covers entries of plugins installed later),
    datasets, strategies, precisions and batch sizes; docs/benchmarks.md describes the file. Leave
    ``task`` as ``None``; put the measurement in ``metadata`` (``{"measure": "quality"}``) so that
    listing does not parse the file.

    :param register: callback adding one entry per call; see the module docstring for its
        arguments.
    :return: nothing; results of this hook are ignored.
    """


@hookspec
def register_launchers(register: Register) -> None:
    """Register launchers: the places a run, a tuning study or a benchmark can execute.

    A launcher's factory returns a :class:`bestiary.extend.Launcher`, chosen with
    ``bestiary train ... --launcher NAME``. It declares the launch options it understands
    (``accepts``: ``nproc_per_node``, ``instance_type``, ...) and the job kinds it starts
    (``train``, ``tune``, ``command``); implements ``plan`` (the exact request and an estimated cost,
    for ``--dry-run``, starting and uploading nothing) and ``launch``; and, for remote jobs,
    ``describe``, ``logs`` and ``stop`` for ``bestiary jobs``. A remote launcher runs
    ``bestiary train --config FILE`` on the far side, so a job is the same run as a local one.
    Settings of the launcher's own (a role, spot capacity) are run options its plugin declares
    with :func:`add_options` in the table named after the launcher; ``Launcher.settings(job)``
    reads them. The built-ins are ``local`` (this process, or torchrun workers) and ``sagemaker``
    (a plugin of its own). Import cloud SDKs inside the launcher's methods, never at registration:
    the conformance kit plans a one-step job with each launcher, giving it sample values for the
    options it accepts and its ``sample_settings``.

    :param register: callback adding one entry per call; see the module docstring for its
        arguments.
    :return: nothing; results of this hook are ignored.
    """


@hookspec
def register_rules(register: Register) -> None:
    """Register training debugger rules, chosen with ``bestiary train ... --rules NAME,...``.

    A rule's factory returns a :class:`bestiary.extend.Rule`: plain Python (no torch) that receives
    collection records (reduced statistics of gradients, weights, updates and activations, step
    timing, CPU/GPU figures), training and validation metrics and facts about the run, and returns
    findings that say what was seen, with numbers, and what to do. Put the rule's parameters and
    their defaults in ``defaults`` (they are its keyword arguments, overridable with the run's
    ``[options.debugger.rule_options.<rule>]``), tag the rules that ``--rules default`` should run
    with ``default``, and leave ``task`` as ``None`` unless the rule only makes sense for one task.
    docs/debugger.md describes the records and the base class.

    :param register: callback adding one entry per call; see the module docstring for its
        arguments.
    :return: nothing; results of this hook are ignored.
    """


@hookspec
def resolve_entry(kind: str, namespace: str, name: str, register: Register) -> None:
    """Offer an entry, on demand, for a qualified name that no plugin registered up front.

    Called when a lookup of ``namespace:name`` misses, so a plugin can serve an open-ended
    family without listing it at start-up: the vision plugin answers ``timm:<any timm model>``.
    Call ``register(name, factory, ..., namespace=namespace)`` for the entry if the plugin knows
    it, or do nothing. Unlike registration hooks, this hook may import what it needs to decide.

    :param kind: the table looked in (``architectures``).
    :param namespace: the part before ``:``.
    :param name: the part after ``:``.
    :param register: the registration callback; pass ``namespace=`` so the qualified name matches.
    :return: nothing; results of this hook are ignored.
    """


@hookspec
def discover_entries(kind: str, register: Register) -> None:
    """List every entry a plugin can offer on demand (see :func:`resolve_entry`).

    Called once per kind when a user asks for everything (``bestiary list architectures --all``)
    or lists with a qualified pattern (``'timm:convnext*'``). Cache what is costly to compute.

    :param kind: the table being listed.
    :param register: the registration callback; pass ``namespace=``.
    :return: nothing; results of this hook are ignored.
    """


@hookspec
def register_tasks(register: Register) -> None:
    """Register task adapters (``image-classification``, ``forecasting``, ...).

    A task's factory returns a :class:`bestiary.extend.Task`: it turns a batch into a loss
    and predictions, derives architecture arguments from a dataset's ``info`` and names the metrics
    reported by default. Architectures, datasets and metrics name their task in ``task``; the
    entry's name is that task's name.

    :param register: callback adding one entry per call; see the module docstring for its
        arguments.
    :return: nothing; results of this hook are ignored.
    """


@hookspec
def on_run_configure(config: RunConfig, host: PluginHost) -> None:
    """Check a run's config before anything is built (no data, model or run directory yet).

    Called on every process when a run is created or resumed, after the config's names were
    looked up. A plugin that reads its own options from the config validates them here, so that a
    typo fails at once with the remedy instead of after the data was loaded.

    :param config: the run config (:class:`bestiary.extend.RunConfig`).
    :param host: the plugin host, for lookups in its registry (``host.registry.table("rules")``).
    :return: nothing; results of this hook are ignored.
    :raises bestiary.errors.ConfigError: the config is wrong for this plugin; the message names
        the remedy.
    """


@hookspec
def on_run_start(run: RunContext) -> None:
    """Called once a run is set up, before its first step (also when it resumes).

    :param run: the run: its config, directory, strategy (rank, world size), model and task.
    :return: nothing; results of this hook are ignored.
    """


@hookspec(firstresult=True)
def wrap_train_loader(run: RunContext, loader: Iterable[Any]) -> Iterable[Any] | None:
    """Wrap the iterable of training batches (timing the wait for data, prefetching, counting).

    Called once per epoch, before its first batch. Implement it as a wrapper so that several
    plugins compose: each receives the loader as wrapped by the implementations inside it and
    returns its own wrapper around that::

        @hookimpl(wrapper=True)
        def wrap_train_loader(run, loader):
            inner = yield          # the loader as the inner implementations wrapped it
            return timed(inner)    # an iterable yielding the same batches

    The wrapped iterable must yield every batch of ``inner``, unchanged and in order (the exact
    resume depends on it). The engine supplies the innermost result (the loader itself); a plain
    (non-wrapper) implementation would replace the loader, so do not write one.

    :param run: the run.
    :param loader: the strategy's data loader of the training split for this epoch.
    :return: an iterable over the same batches.
    """


@hookspec
def on_batch_start(run: RunContext, step: int, batch: Any) -> None:
    """Called for every training batch (every micro-batch under accumulation), after it was moved
    to the device and before its forward pass.

    :param run: the run.
    :param step: optimizer steps done so far (the batch belongs to step ``step + 1``).
    :param batch: the batch, on the run's device; do not modify it.
    :return: nothing; results of this hook are ignored.
    """


@hookspec
def before_backward(run: RunContext, step: int, loss: Any) -> None:
    """Called for every training batch with its loss, after the forward pass and before the
    backward pass.

    :param run: the run.
    :param step: optimizer steps done so far.
    :param loss: the batch's loss tensor (attached to the graph, before accumulation scaling);
        read it, never call ``backward`` on it. Strategies that run forward and backward as one
        schedule (pipeline) call it on the last stage, once per pipeline micro-batch.
    :return: nothing; results of this hook are ignored.
    """


@hookspec
def before_optimizer_step(run: RunContext, step: int, loss: Any) -> None:
    """Called once per optimizer step, after the last backward and before gradient unscaling,
    clipping and the optimizer step: the gradients of the step are in ``param.grad``.

    :param run: the run.
    :param step: optimizer steps done so far (this is step ``step + 1``).
    :param loss: the detached loss of the step's last batch (a tensor on the device; reading
        its value waits for the device).
    :return: nothing; results of this hook are ignored.
    """


@hookspec
def on_batch_end(run: RunContext, step: int, loss: Any, stepped: bool) -> None:
    """Called after every training batch, once its backward pass (and, when ``stepped``, the
    optimizer step and the schedule) is done.

    :param run: the run.
    :param step: optimizer steps done so far (counting this batch's step when ``stepped``).
    :param loss: the batch's detached loss (a tensor on the device).
    :param stepped: whether this batch ended an optimizer step (the last of an accumulation).
    :return: nothing; results of this hook are ignored.
    """


@hookspec
def on_step_end(run: RunContext, step: int, metrics: dict[str, float]) -> None:
    """Called after each optimizer step that logs training metrics (every ``log_every`` steps
    and the last step), with the figures written to ``metrics.jsonl``. For every step, use
    ``on_batch_end``: its ``stepped`` argument marks optimizer steps.

    :param run: the run.
    :param step: optimizer steps done so far.
    :param metrics: training figures averaged since the previous call: ``loss``, ``lr``,
        ``samples_per_s``, and ``grad_norm`` when gradients are clipped.
    :return: nothing; results of this hook are ignored.
    """


@hookspec
def on_evaluation_end(run: RunContext, step: int, split: str, metrics: dict[str, float]) -> None:
    """Called after each evaluation, with metrics already reduced over processes.

    :param run: the run.
    :param step: optimizer steps done when the evaluation ran.
    :param split: the evaluated split (``validation`` during training).
    :param metrics: ``loss`` and every metric of the run, by name.
    :return: nothing; results of this hook are ignored.
    """


@hookspec
def on_checkpoint_saved(run: RunContext, step: int, path: Path) -> None:
    """Called after a checkpoint was written and renamed into place.

    :param run: the run.
    :param step: optimizer steps the checkpoint holds.
    :param path: the checkpoint directory.
    :return: nothing; results of this hook are ignored.
    """


@hookspec
def on_run_end(run: RunContext, status: str, summary: dict[str, Any]) -> None:
    """Called once when a run ends, whether it completed, stopped early or was interrupted.

    :param run: the run.
    :param status: ``completed``, ``stopped`` (early stopping), ``interrupted`` (SIGTERM) or
        ``failed``.
    :param summary: what ``summary.json`` holds: final and best metrics, wall time, samples/s.
    :return: nothing; results of this hook are ignored.
    """


@hookspec
def on_finding(run: RunContext, finding: dict[str, Any]) -> None:
    """Called on the main process when a debugger rule reports a finding during a run.

    :param run: the run.
    :param finding: ``rule``, ``step``, ``message`` (what was seen, with numbers), ``suggestion``
        (what to do), ``evidence`` (the numbers, by name), ``severity`` (``info``, ``warning``,
        ``error``) and ``action`` (``report``, or ``stop`` when the run is asked to end).
    :return: nothing; results of this hook are ignored.
    """


# -- Extension hooks: new hooks (kinds), CLI commands and run options ---------------------------


@hookspec(historic=True)
def add_hookspecs(pluginmanager: pluggy.PluginManager) -> None:
    """Add hook specifications of the plugin's own, as pytest's ``pytest_addhooks`` does.

    Called once for every plugin as it is registered, before its hooks are validated, so a
    plugin may implement the hooks it declares here; plugins loaded after it may implement them
    too. A spec named ``register_<kind>`` (taking ``register``) creates the kind ``<kind>``: a new
    registry table that ``bestiary list <kind>`` shows and :func:`bestiary.api.get_entry` reads::

        class WidgetSpecs:
            @staticmethod
            @hookspec
            def register_widgets(register): ...

        @hookimpl
        def add_hookspecs(pluginmanager):
            pluginmanager.add_hookspecs(WidgetSpecs)

    Mark specs with ``bestiary.extend.hookspec`` (``pluggy.HookspecMarker("bestiary")``).

    :param pluginmanager: the host's ``pluggy.PluginManager``; call its ``add_hookspecs``.
    :return: nothing; results of this hook are ignored.
    """


@hookspec
def add_commands(cli: click.Group) -> None:
    """Add subcommands to the ``bestiary`` command line (``bestiary jobs`` comes this way).

    Called once, when the command line first needs a command that bestiary itself does not
    have, or lists its commands (``bestiary --help``). Import click here, and anything heavy
    inside the commands, so that ``bestiary list`` stays fast. A name bestiary or an earlier
    plugin already uses is left alone.

    :param cli: the root ``click.Group``; call ``cli.add_command(command)``.
    :return: nothing; results of this hook are ignored.
    """


@hookspec
def add_options(add: AddOption) -> None:
    """Declare options of the commands that start runs (``train``, ``tune``, ``autopilot``).

    Each call declares one option: ``add(name, *, type="str", default=None, help="",
    commands=("train", "tune"), table=None, flag=None, choices=None, multiple=False)``; ``type``
    is ``str``, ``int``, ``float``, ``bool`` or ``dict`` (a table, with no flag). Its value lands in
    the run config's ``options[table][name]`` (TOML ``[options.<table>]``; ``table`` defaults to
    the plugin's name), with the declared default filled in when it is not ``None``, so
    ``config.json`` records it. Users set it with the flag (``--<name>`` by default), a config
    file or ``--set <table>.<name>=VALUE``; keys no plugin declares fail with close matches, and a
    table of a plugin that is not loaded fails naming it. Read it in the run with
    ``bestiary.extend.option_value(config, table, name)``.

    :param add: callback declaring one option; see :class:`bestiary.extend.AddOption`.
    :return: nothing; results of this hook are ignored.
    """
