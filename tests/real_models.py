"""Where the real models are, and skipping when they are not (shared by every test folder)."""

from __future__ import annotations

from pathlib import Path

import pytest

from ggufsm.spec.user_cache import cache_root

REAL_MODEL_FILES = {
    "smollm2": "SmolLM2-135M-Instruct.Q4_1.gguf",
    "gemma3": "gemma-3-270m-q4_k_m.gguf",
}


def model_cache_dir() -> Path:
    return cache_root() / "models"


def real_model_path(name: str) -> Path:
    """The cached real model's path; skips the test when it has not been pulled."""
    path = model_cache_dir() / REAL_MODEL_FILES[name]
    if not path.is_file():
        pytest.skip(f"real model {name!r} not in the cache ({path}); run `ggufsm models pull {name}`")
    return path


REAL_MODELS = tuple(REAL_MODEL_FILES)
