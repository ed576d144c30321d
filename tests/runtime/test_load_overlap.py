"""A load builds the forward (its checks, the repack) on a thread of its own while it builds the tokenizer,
and still reports their errors in validation's order (tests/runtime/test_load_error_order.py)."""

from __future__ import annotations

import shutil
import threading

import pytest

from ggufsm.reference import architectures
from ggufsm.reference.architectures import shared_forward
from ggufsm.reference.model import loaded_model
from ggufsm.reference.runtime import Runtime
from ggufsm.spec.errors import InvalidModel, UnsupportedModel

# Only a guard against a hang should the two ever run one after the other again: no timing is asserted.
DEADLOCK_GUARD_S = 300


@pytest.fixture
def own_model(tiny_model, tmp_path):
    path = tmp_path / "own.gguf"
    shutil.copyfile(tiny_model, path)
    return path


def runtime_for_load() -> Runtime:
    runtime = Runtime()
    runtime.init_runtime(n_ctx=64, n_threads=1)
    return runtime


def test_the_forward_is_built_while_the_tokenizer_is_being_built(own_model, monkeypatch):
    """The tokenizer's build waits until the forward's has started: a load that ran them one after the
    other would wait here for ever (the guard fails it instead)."""
    forward_started = threading.Event()
    build_forward, build_tokenizer = architectures.load, loaded_model.tokenizer_from_metadata

    def forward(gguf_file, *, n_threads):
        forward_started.set()
        return build_forward(gguf_file, n_threads=n_threads)

    def tokenizer(metadata):
        assert forward_started.wait(DEADLOCK_GUARD_S), "the forward's build did not start while the tokenizer was built"
        return build_tokenizer(metadata)

    monkeypatch.setattr(architectures, "load", forward)
    monkeypatch.setattr(loaded_model, "tokenizer_from_metadata", tokenizer)
    runtime = runtime_for_load()
    runtime.load_model(own_model)
    assert len(runtime.generate([5, 6], 2, temperature=0.0, stop_at_eos=False).token_ids) == 2
    runtime.free()


def test_a_tokenizer_error_waits_for_the_forward_built_beside_it_and_gives_it_back(own_model, monkeypatch):
    """The tokenizer fails while the forward is still being built: the load's error is the tokenizer's,
    and the forward finished beside it holds no lease afterwards."""
    held = shared_forward.held()
    tokenizer_failed = threading.Event()
    build_forward = architectures.load

    def tokenizer(metadata):
        tokenizer_failed.set()
        raise InvalidModel("tokenizer.ggml.tokens: injected")

    def forward(gguf_file, *, n_threads):
        assert tokenizer_failed.wait(DEADLOCK_GUARD_S)
        return build_forward(gguf_file, n_threads=n_threads)

    monkeypatch.setattr(loaded_model, "tokenizer_from_metadata", tokenizer)
    monkeypatch.setattr(architectures, "load", forward)
    runtime = runtime_for_load()
    with pytest.raises(InvalidModel, match="injected"):
        runtime.load_model(own_model)
    assert shared_forward.held() == held
    runtime.free()


def test_a_forward_error_from_the_build_thread_is_the_loads_named_error(own_model, monkeypatch):
    def forward(gguf_file, *, n_threads):
        raise UnsupportedModel("injected forward refusal")

    monkeypatch.setattr(architectures, "load", forward)
    runtime = runtime_for_load()
    with pytest.raises(UnsupportedModel, match="injected forward refusal"):
        runtime.load_model(own_model)
    assert isinstance(runtime.last_error, UnsupportedModel)
    runtime.free()
