"""A fixture for tests made of many small torch ops: on 2 shared cores one thread is much
faster than two spinning against other processes' work (seen: 5 s vs 100 s under load)."""

import pytest
import torch


@pytest.fixture
def one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
