"""What a dataset factory returns, and resumable, seeded batching.

A dataset entry's factory returns :class:`Data`: its splits (map-style ``torch`` datasets, or any
object with ``__len__`` and ``__getitem__``) and ``info``, the facts its task needs
(``num_classes``, ``in_chans``, ``input_size`` for images; ``freq``, ``prediction_length`` for
series).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch  # this module is only imported by runs, which need torch anyway

from ..errors import ConfigError


@dataclass
class Data:
    """Splits of a dataset and what a task needs to know about them.

    :param train: training split.
    :param validation: validation split, or ``None``.
    :param test: test split, or ``None``.
    :param info: task facts, for example ``{"num_classes": 10, "in_chans": 1, "input_size": [1, 8, 8]}``.
    :param collate: batch collation function; default ``torch.utils.data.default_collate``.
    :param train_collate: collation for training batches only (batch-level augmentation such as
        mixup); default ``collate``.
    """

    train: Any
    validation: Any = None
    test: Any = None
    info: Mapping[str, Any] = field(default_factory=dict)
    collate: Any = None
    train_collate: Any = None

    def split(self, name: str) -> Any:
        """The split called ``name``; a clear error when the dataset has none."""
        if name not in ("train", "validation", "test"):
            raise ConfigError(f"unknown split {name!r}: choose train, validation or test")
        data = getattr(self, name)
        if data is None:
            have = [s for s in ("train", "validation", "test") if getattr(self, s) is not None]
            raise ConfigError(f"this dataset has no {name} split; it has: {', '.join(have)}")
        return data


class EpochSampler(torch.utils.data.Sampler[int]):
    """Indices of one epoch, shuffled by ``(seed, epoch)`` alone and sharded by rank.

    The order depends on nothing but these numbers, so a resumed run sees the same batches; ``skip``
    drops the first samples (of this rank) already consumed before an interruption.

    :param length: dataset length.
    :param shuffle: shuffle the indices.
    :param seed: run seed.
    :param epoch: epoch number.
    :param rank: this process's rank.
    :param world_size: number of processes; each rank gets every ``world_size``-th index, and the
        list is padded by wrapping so ranks get equal counts.
    :param skip: indices to skip from the start of this rank's share.
    """

    def __init__(
        self,
        length: int,
        *,
        shuffle: bool,
        seed: int,
        epoch: int,
        rank: int = 0,
        world_size: int = 1,
        skip: int = 0,
    ) -> None:
        self.length, self.shuffle, self.seed, self.epoch = length, shuffle, seed, epoch
        self.rank, self.world_size, self.skip = rank, world_size, skip
        self.per_rank = -(-length // world_size)

    def set_epoch(self, epoch: int, skip: int = 0) -> None:
        """Move to ``epoch``, skipping its first ``skip`` samples (the loader and its persistent
        workers stay, only the order changes)."""
        self.epoch, self.skip = epoch, skip

    def _indices(self) -> list[int]:
        if self.shuffle:
            g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
            order = torch.randperm(self.length, generator=g).tolist()
        else:
            order = list(range(self.length))
        total = self.per_rank * self.world_size
        order += order[: total - len(order)]
        return order[self.rank : total : self.world_size]

    def __iter__(self) -> Iterator[int]:
        return iter(self._indices()[self.skip :])

    def __len__(self) -> int:
        return max(0, self.per_rank - self.skip)


class ShardedIterable(torch.utils.data.IterableDataset):
    """This rank's and worker's share of an iterable dataset: item ``i`` of the stream goes to shard
    ``i % (world_size * workers)``, so ranks and data-loader workers never see the same item.

    ``skip_batches`` resumes inside an epoch exactly: the DataLoader takes batch ``k`` from worker
    ``k % workers``, so each worker drops the items of the batches it had already produced, and
    the workers' roles rotate so the next batch comes from the stream that was due. The
    wrapped dataset's ``set_epoch(epoch)`` is called when it has one (to reshuffle a stream).
    An iterable dataset must define ``__len__`` (its items per epoch over all ranks), which
    schedules and progress need.
    """

    def __init__(self, dataset: Any, *, rank: int, world_size: int, batch_size: int, epoch: int = 0,
                 skip_batches: int = 0) -> None:
        self.dataset, self.rank, self.world_size, self.batch_size = dataset, rank, world_size, batch_size
        self.set_epoch(epoch, skip_batches)

    def set_epoch(self, epoch: int, skip_batches: int = 0) -> None:
        self.epoch, self.skip_batches = epoch, skip_batches
        if hasattr(self.dataset, "set_epoch"):
            self.dataset.set_epoch(epoch)

    def __len__(self) -> int:
        return (len(self.dataset) + self.world_size - 1) // self.world_size

    def __iter__(self) -> Iterator[Any]:
        import itertools

        info = torch.utils.data.get_worker_info()
        worker, workers = (info.id, info.num_workers) if info is not None else (0, 1)
        # a resumed loader starts with worker 0, where the interrupted one would have asked worker
        # skip % workers next: worker w plays that worker's part, so batches keep their order
        worker = (worker + self.skip_batches) % workers
        shards = self.world_size * workers
        done = max(0, -(-(self.skip_batches - worker) // workers))  # batches this worker already made
        stream = itertools.islice(iter(self.dataset), self.rank * workers + worker, None, shards)
        return itertools.islice(stream, done * self.batch_size, None)


def make_loader(
    dataset: Any,
    *,
    batch_size: int,
    shuffle: bool,
    seed: int,
    epoch: int = 0,
    skip_batches: int = 0,
    drop_last: bool = False,
    rank: int = 0,
    world_size: int = 1,
    num_workers: int = 0,
    collate: Any = None,
    pin_memory: bool = False,
) -> torch.utils.data.DataLoader:
    """A DataLoader whose order is a function of ``(seed, epoch)``: map-style datasets through
    :class:`EpochSampler`, iterable ones through :class:`ShardedIterable` (their own order).

    :param skip_batches: batches of this epoch already consumed (resuming).
    """
    if isinstance(dataset, torch.utils.data.IterableDataset):
        if not hasattr(dataset, "__len__"):
            raise TypeError(f"iterable dataset {type(dataset).__name__} needs __len__ (items per epoch) "
                            "for schedules, progress and resuming")
        return torch.utils.data.DataLoader(
            ShardedIterable(dataset, rank=rank, world_size=world_size, batch_size=batch_size, epoch=epoch,
                            skip_batches=skip_batches),
            batch_size=batch_size, drop_last=drop_last, num_workers=num_workers, collate_fn=collate,
            pin_memory=pin_memory,
            persistent_workers=False,  # set_epoch must reach the workers, which get a fresh copy each epoch
        )
    sampler = EpochSampler(
        len(dataset),
        shuffle=shuffle,
        seed=seed,
        epoch=epoch,
        rank=rank,
        world_size=world_size,
        skip=skip_batches * batch_size,
    )
    generator = torch.Generator().manual_seed(seed * 7919 + epoch)
    return torch.utils.data.DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=sampler,
        drop_last=drop_last,
        num_workers=num_workers,
        collate_fn=collate,
        generator=generator,
        pin_memory=pin_memory,
        persistent_workers=num_workers > 0,
    )


def set_epoch(loader: Any, epoch: int, skip_batches: int = 0) -> None:
    """Point a loader from :func:`make_loader` at another epoch (and resume position)."""
    if isinstance(loader.dataset, ShardedIterable):
        loader.dataset.set_epoch(epoch, skip_batches)
        return
    loader.sampler.set_epoch(epoch, skip_batches * loader.batch_size)


def batches_per_epoch(length: int, batch_size: int, world_size: int = 1, drop_last: bool = False) -> int:
    per_rank = -(-length // world_size)
    return per_rank // batch_size if drop_last else -(-per_rank // batch_size)
