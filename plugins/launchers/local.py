"""The ``local`` launcher: train in this process, or start torchrun workers on this machine (and
others) through :mod:`bestiary.engine.torchrun`."""

from __future__ import annotations

from typing import Any

from bestiary.extend import LOCAL_OPTIONS, ConfigError, Job, Launcher, LaunchResult


class LocalLauncher(Launcher):
    """Runs here: in-process for one process, torchrun for ``--nproc-per-node``/``--nnodes``."""

    name = "local"
    accepts = LOCAL_OPTIONS | {"nproc_per_node"}
    kinds = frozenset({"train"})

    @staticmethod
    def _launch_spec(job: Job) -> Any:
        from bestiary.extend import TorchrunLaunch  # imports no torch

        o = job.options
        return TorchrunLaunch(o.nproc_per_node or 1, o.nnodes, o.node_rank, o.rdzv_endpoint, o.max_restarts)

    def plan(self, job: Job) -> dict[str, Any]:
        self.check(job)
        spec = self._launch_spec(job)
        spec.validate()
        plan: dict[str, Any] = {"launcher": self.name, "kind": job.kind,
                                "processes": {"nproc_per_node": spec.nproc_per_node, "nnodes": spec.nnodes,
                                              "node_rank": spec.node_rank, "rdzv_endpoint": spec.rdzv_endpoint,
                                              "max_restarts": spec.max_restarts,
                                              "torchrun": spec.needed},
                                "estimated_cost_usd": 0.0}
        if job.config is not None:
            plan["config"] = job.config.to_dict()
        if job.resume:
            plan["resume"] = job.resume
        return plan

    def launch(self, job: Job) -> LaunchResult:
        self.check(job)
        if job.config is None and job.resume is None:
            raise ConfigError("a local run needs a config or a run directory to resume")
        spec = self._launch_spec(job)
        if spec.needed:
            from bestiary.extend import launch_torchrun

            return LaunchResult(exit_code=launch_torchrun(job.config, spec, resume=job.resume, quiet=job.quiet))
        from bestiary.extend import start_run

        summary = start_run(job.config, resume=job.resume, quiet=job.quiet)
        code = 0
        if summary["status"] == "interrupted":
            from bestiary.extend import interrupted_exit_code

            code = interrupted_exit_code(summary)
        return LaunchResult(exit_code=code, summary=summary)
