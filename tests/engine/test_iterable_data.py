"""Iterable datasets: sharded by rank and data-loader worker, resumable inside an epoch."""

from __future__ import annotations

import pytest
import torch

from bestiary.engine.data import make_loader, set_epoch


class Stream(torch.utils.data.IterableDataset):
    def __init__(self, n: int) -> None:
        self.n, self.epoch = n, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.n

    def __iter__(self):
        return iter(range(self.epoch * 1000, self.epoch * 1000 + self.n))


def items(loader) -> list[int]:
    return [int(v) for batch in loader for v in batch]


@pytest.mark.parametrize("workers", [0, 2])
def test_ranks_and_workers_split_the_stream_without_overlap(workers):
    seen = []
    for rank in (0, 1):
        loader = make_loader(Stream(40), batch_size=4, shuffle=True, seed=0, rank=rank, world_size=2,
                             num_workers=workers)
        got = items(loader)
        assert len(got) == 20
        seen += got
    assert sorted(seen) == list(range(40))


@pytest.mark.parametrize("workers", [0, 2])
def test_resuming_inside_an_epoch_continues_where_it_stopped(workers):
    whole = list(make_loader(Stream(48), batch_size=4, shuffle=False, seed=0, num_workers=workers))
    rest = list(make_loader(Stream(48), batch_size=4, shuffle=False, seed=0, num_workers=workers, skip_batches=5))
    assert [b.tolist() for b in rest] == [b.tolist() for b in whole[5:]]


def test_set_epoch_reaches_the_stream_and_len_is_required():
    loader = make_loader(Stream(8), batch_size=4, shuffle=False, seed=0)
    set_epoch(loader, 3)
    assert items(loader)[0] == 3000

    class Endless(torch.utils.data.IterableDataset):
        def __iter__(self):
            return iter(range(10))

    with pytest.raises(TypeError, match="needs __len__"):
        make_loader(Endless(), batch_size=2, shuffle=False, seed=0)
