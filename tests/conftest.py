import os

import pytest
import torch

# ``threads: auto`` (the default) follows the machine's load; tests that compare runs bit for bit
# need the same count in each, so pin it (auto honours OMP_NUM_THREADS; tests/test_cpu.py unsets it)
os.environ.setdefault("OMP_NUM_THREADS", str(torch.get_num_threads()))


@pytest.fixture(autouse=True)
def _seed_and_threads():
    torch.manual_seed(0)
    yield
