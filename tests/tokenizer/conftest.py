"""Tokenizers for the tests: the real models' (read once per session) and tiny synthetic ones."""

from __future__ import annotations

import pytest
from real_models import REAL_MODELS  # noqa: F401  (re-exported for the tests)

from ggufsm.reference.model import registry as models
from ggufsm.reference.tokenizers.tokenizer import read_model_metadata, tokenizer_from_metadata

_metadata_cache: dict[str, dict] = {}


def real_metadata(name: str) -> dict:
    """The real model's metadata, read once per session (the reader is slow: 2 s / 10 s);
    skips the test when the model is not in the cache."""
    if name not in _metadata_cache:
        status = models.cache_status(models.REGISTRY[name])
        if status.state != "verified":
            pytest.skip(f"real model {name!r} not ready ({status.detail}); run `ggufsm models pull {name}`")
        _metadata_cache[name] = read_model_metadata(status.path)
    return _metadata_cache[name]


@pytest.fixture(scope="session")
def real_tokenizers():
    """name -> tokenizer, built on first use; skips when the model is not cached."""
    built: dict = {}

    def get(name: str):
        if name not in built:
            built[name] = tokenizer_from_metadata(real_metadata(name))
        return built[name]

    return get
