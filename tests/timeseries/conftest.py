"""Time-series tests run torch on one thread: the tiny models here gain nothing from more, and on
a shared machine extra threads only contend."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _one_thread():  # type: ignore[no-untyped-def]
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
