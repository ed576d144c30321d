"""A fixture the kernel tests share."""

from __future__ import annotations

import pytest

from ggufsm._core import kernels


@pytest.fixture
def restore_isa():
    """Puts the dispatched kernel variant back after a test forces another."""
    before = kernels.active_isa()
    yield
    kernels.force_isa(before)
