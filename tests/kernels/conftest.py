"""A fixture the kernel tests share."""

from __future__ import annotations

import pytest

from ggufsm import _core


@pytest.fixture
def restore_isa():
    """Puts the dispatched kernel variant back after a test forces another."""
    before = _core.active_isa()
    yield
    _core.force_isa(before)
