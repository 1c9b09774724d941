"""The per-step hooks of a run, looked up once so that hooks nobody implements cost nothing."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

#: Hooks the engine calls inside the training loop (see :mod:`bestiary.hookspecs`).
PER_STEP = ("wrap_train_loader", "on_batch_start", "before_backward", "before_optimizer_step", "on_batch_end")


def _loader_itself(run: Any, loader: Iterable[Any]) -> Iterable[Any]:
    """The innermost result of ``wrap_train_loader``: the loader unchanged."""
    return loader


class StepHooks:
    """Callers of the per-step hooks that have at least one implementation; ``None`` for the others.

    Built once per run, after ``on_run_start`` (where a plugin may register a per-run object), so
    that the loop tests an attribute instead of calling pluggy for hooks nobody implements.

    :param pm: the plugin manager of the run's host.
    """

    def __init__(self, pm: Any) -> None:
        def caller(name: str) -> Any:
            hook = getattr(pm.hook, name)
            return hook if hook.get_hookimpls() else None

        self.wrap_train_loader = caller("wrap_train_loader")
        self.on_batch_start = caller("on_batch_start")
        self.before_backward = caller("before_backward")
        self.before_optimizer_step = caller("before_optimizer_step")
        self.on_batch_end = caller("on_batch_end")

    def loader(self, run: Any, loader: Iterable[Any]) -> Iterable[Any]:
        """``loader`` wrapped by every ``wrap_train_loader`` wrapper, innermost first."""
        if self.wrap_train_loader is None:
            return loader
        wrapped = self.wrap_train_loader.call_extra([_loader_itself], {"run": run, "loader": loader})
        if wrapped is None:
            raise TypeError("a wrap_train_loader implementation returned None; a wrapper must return an "
                            "iterable over the batches it received (see `bestiary.hookspecs.wrap_train_loader`)")
        return wrapped
