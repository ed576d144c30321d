"""Tiny synthetic models for the runtime's rule tests, written once per session."""

from __future__ import annotations

import pytest

from ggufsm.conformance.fixtures.tiny_models import write_tiny_llama


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory):
    return write_tiny_llama(tmp_path_factory.mktemp("tiny") / "tiny-llama.gguf", seed=0)


@pytest.fixture(scope="session")
def other_tiny_model(tmp_path_factory):
    """A second model of the same shape whose greedy output differs (for replace)."""
    return write_tiny_llama(tmp_path_factory.mktemp("tiny") / "tiny-llama-other.gguf", seed=1)


@pytest.fixture(scope="session")
def corrupt_model(tiny_model, tmp_path_factory):
    """The tiny model with its tensor data cut off: well-formed header, missing bytes."""
    path = tmp_path_factory.mktemp("corrupt") / "truncated.gguf"
    data = tiny_model.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


@pytest.fixture
def ready_runtime(tiny_model):
    from ggufsm.reference.runtime import Runtime

    runtime = Runtime()
    runtime.init_runtime(n_ctx=64, n_threads=1)
    runtime.load_model(tiny_model)
    yield runtime
    runtime.free()
