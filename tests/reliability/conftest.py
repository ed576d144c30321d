"""Tiny synthetic models for the reliability tests, written once per session."""

from __future__ import annotations

import pytest

from ggufsm.conformance.fixtures.tiny_models import write_tiny_llama


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory):
    # Enough layers that the weights span many pages: a truncation leaves most of them past the end.
    return write_tiny_llama(tmp_path_factory.mktemp("tiny") / "tiny-llama.gguf", seed=0, n_layer=4, n_ctx=512)
