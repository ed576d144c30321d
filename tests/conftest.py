"""Shared test fixtures: the real models' paths (skipping when they are not cached)."""

from __future__ import annotations

from pathlib import Path

import pytest
from real_models import real_model_path


@pytest.fixture
def smollm2_path() -> Path:
    return real_model_path("smollm2")


@pytest.fixture
def gemma3_path() -> Path:
    return real_model_path("gemma3")
