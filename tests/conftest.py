"""Shared test fixtures: the real models' paths (skipping when they are not cached), and the
`slow` marker's switch.

`slow` marks the exhaustive sweeps over the real models (every tensor of both files
dequantized bit-exactly, the fused forward against the numpy reference on the full
models, gguf's own reader on Gemma 3). `make test` skips them and runs their sampled
siblings; `make test SLOW=1` (what CI runs) or `pytest --slow` runs them too.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from real_models import real_model_path


def pytest_addoption(parser):
    parser.addoption("--slow", action="store_true", default=False,
                     help="also run the tests marked slow (the exhaustive sweeps over the real models)")


# pytest-timeout's net for a hung sweep. A sweep runs the numpy reference over a whole model:
# on this shared machine at a load of 36 (7 % of a core for the run) the fused-against-numpy
# sweeps passed 900 s of wall clock while still working, so theirs is wider.
SLOW_TIMEOUT_S = 3600


def pytest_collection_modifyitems(config, items):
    if config.getoption("--slow"):
        for item in items:
            if "slow" in item.keywords:
                item.add_marker(pytest.mark.timeout(SLOW_TIMEOUT_S))
        return
    skip = pytest.mark.skip(reason="slow: an exhaustive sweep; `make test SLOW=1` or `pytest --slow` runs it")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def smollm2_path() -> Path:
    return real_model_path("smollm2")


@pytest.fixture
def gemma3_path() -> Path:
    return real_model_path("gemma3")
