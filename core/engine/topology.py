"""How a run's processes divide the work: the degrees of each kind of parallelism and this
process's place in them.

Every strategy gives one (:attr:`bestiary.engine.strategy.Strategy.topology`). The loader shards
data by the data-parallel rank and size, metric reductions count each data-parallel replica once,
and config.json and debug/info.json record it, so no reader has to know which strategy split what.
Pure Python: listing entries and reading run directories never import torch through it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from ..errors import ConfigError


@dataclass(frozen=True)
class Topology:
    """The layout of one run's processes as seen from one of them.

    ``dp_size * tp_size * pp_size`` is the number of processes: ``dp_size`` replicas read
    different data, and each replica is spread over ``tp_size * pp_size`` processes that split
    its layers (pipeline) or its weight matrices (tensor) and read the same batches.

    :param world_size: number of processes of the run.
    :param rank: this process's rank, ``0 <= rank < world_size``.
    :param dp_size: data-parallel degree: replicas that each read their own share of the data.
    :param dp_rank: which replica this process belongs to (its share of the data).
    :param tp_size: tensor-parallel degree.
    :param pp_size: pipeline-parallel degree (stages).
    :param local_rank: this process's index on its machine (picks its GPU).
    """

    world_size: int = 1
    rank: int = 0
    dp_size: int = 1
    dp_rank: int = 0
    tp_size: int = 1
    pp_size: int = 1
    local_rank: int = 0

    def __post_init__(self) -> None:
        for name in ("world_size", "dp_size", "tp_size", "pp_size"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ConfigError(f"topology {name}={value!r} must be a whole number of at least 1")
        if self.dp_size * self.tp_size * self.pp_size != self.world_size:
            raise ConfigError(
                f"topology dp {self.dp_size} x tp {self.tp_size} x pp {self.pp_size} = "
                f"{self.dp_size * self.tp_size * self.pp_size} processes, but the run has {self.world_size}; "
                "start as many processes as the degrees multiply to (--nproc-per-node) or change the "
                "strategy's degrees (--set strategy_options.dp=N)")
        for name, size in (("rank", self.world_size), ("dp_rank", self.dp_size), ("local_rank", self.world_size)):
            value = getattr(self, name)
            if not isinstance(value, int) or not 0 <= value < size:
                raise ConfigError(f"topology {name}={value!r} is outside 0..{size - 1}; "
                                 "it comes from the launcher's RANK/LOCAL_RANK, so start the run with torchrun")

    @property
    def is_main(self) -> bool:
        """Whether this process writes files, logs and reports (rank 0)."""
        return self.rank == 0

    @property
    def model_parallel_size(self) -> int:
        """Processes that share one data-parallel replica (``tp_size * pp_size``): they read the
        same batches, so a statistic summed over every process counts each sample this many times."""
        return self.tp_size * self.pp_size

    @property
    def is_distributed(self) -> bool:
        """Whether the run has more than one process."""
        return self.world_size > 1

    def as_dict(self) -> dict[str, Any]:
        """The fields as JSON values (for config.json and debug/info.json)."""
        return asdict(self)

    @classmethod
    def data_parallel(cls, world_size: int = 1, rank: int = 0, local_rank: int = 0) -> Topology:
        """Every process a replica of its own (one process, DDP, FSDP)."""
        return cls(world_size=world_size, rank=rank, dp_size=world_size, dp_rank=rank, local_rank=local_rank)
