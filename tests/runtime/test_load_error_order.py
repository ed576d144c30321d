"""A load's errors come in the validation's order (tokenizer, forward, finite weights), though the forward
is built beside the tokenizer, and a failed load holds nothing: not the forward it leased, not the file
through its kept error's traceback."""

from __future__ import annotations

import gc
import shutil
import threading

import pytest

from ggufsm.reference import architectures
from ggufsm.reference.architectures import shared_forward
from ggufsm.reference.model import loaded_model
from ggufsm.reference.model.gguf_file import open_gguf
from ggufsm.reference.runtime import Runtime
from ggufsm.spec.errors import GgufsmError, InvalidModel, UnsupportedModel


@pytest.fixture
def own_model(tiny_model, tmp_path):
    """A copy of the tiny model: a file of its own, so nothing derived from another test's load is shared."""
    path = tmp_path / "own.gguf"
    shutil.copyfile(tiny_model, path)
    return path


def load(path) -> Runtime:
    runtime = Runtime()
    runtime.init_runtime(n_ctx=64, n_threads=1)
    runtime.load_model(path)
    return runtime


def load_error(path) -> GgufsmError:
    runtime = Runtime()
    runtime.init_runtime(n_ctx=64, n_threads=1)
    try:
        with pytest.raises(GgufsmError) as raised:
            runtime.load_model(path)
    finally:
        runtime.free()
    return raised.value


def test_a_tokenizer_error_comes_before_a_forward_error_and_the_built_forward_is_given_back(own_model, monkeypatch):
    held = shared_forward.held()

    def broken_tokenizer(metadata):
        raise InvalidModel("tokenizer.ggml.tokens: injected")

    monkeypatch.setattr(loaded_model, "tokenizer_from_metadata", broken_tokenizer)
    assert load_error(own_model).message == "tokenizer.ggml.tokens: injected"
    assert shared_forward.held() == held

    def broken_forward(gguf_file, *, n_threads):
        raise UnsupportedModel("injected forward refusal")

    monkeypatch.setattr(architectures, "load", broken_forward)
    assert load_error(own_model).message == "tokenizer.ggml.tokens: injected"


def test_a_forward_error_comes_before_non_finite_weights(own_model, monkeypatch):
    def broken_forward(gguf_file, *, n_threads):
        raise UnsupportedModel("injected forward refusal")

    def not_finite(gguf_file, checked=None):
        raise InvalidModel("injected: a NaN")

    monkeypatch.setattr(architectures, "load", broken_forward)
    monkeypatch.setattr(loaded_model, "check_finite_weights", not_finite)
    assert load_error(own_model).message == "injected forward refusal"
    monkeypatch.undo()
    monkeypatch.setattr(loaded_model, "check_finite_weights", not_finite)
    assert load_error(own_model).message == "injected: a NaN"


def test_a_load_failed_in_the_forward_holds_no_file(own_model, monkeypatch):
    path = own_model

    def broken_forward(gguf_file, *, n_threads):
        raise UnsupportedModel("injected forward refusal")

    monkeypatch.setattr(architectures, "load", broken_forward)
    runtime = Runtime()
    runtime.init_runtime(n_ctx=64, n_threads=1)
    with pytest.raises(UnsupportedModel):
        runtime.load_model(path)
    gc.collect()
    assert runtime.last_error is not None  # the error is kept, and holds no map through its traceback
    # An open file held anywhere is shared by the next open, with what the failed load derived from it
    # (its tokenizer); a file nobody holds opens afresh.
    with open_gguf(path) as reopened:
        assert "tokenizer" not in getattr(reopened.core, "_ggufsm_derived", {})
    runtime.free()


def test_the_forward_is_built_while_the_tokenizer_is(own_model, monkeypatch):
    # The tokenizer's build waits for the forward's to have started: a load that built them one after
    # the other would never finish it (the wait's limit only keeps such a failure from hanging the suite).
    forward_started = threading.Event()
    real_load, real_tokenizer = architectures.load, loaded_model.tokenizer_from_metadata

    def forward(gguf_file, *, n_threads):
        forward_started.set()
        return real_load(gguf_file, n_threads=n_threads)

    def tokenizer(metadata):
        assert forward_started.wait(timeout=60), "the forward's build did not start beside the tokenizer's"
        return real_tokenizer(metadata)

    monkeypatch.setattr(architectures, "load", forward)
    monkeypatch.setattr(loaded_model, "tokenizer_from_metadata", tokenizer)
    runtime = load(own_model)
    assert runtime.generate("hello", 2, temperature=0.0).token_ids
    runtime.free()


def test_a_forward_error_beside_a_tokenizer_error_leaves_no_thread_behind(own_model, monkeypatch):
    def broken_tokenizer(metadata):
        raise InvalidModel("tokenizer.ggml.tokens: injected")

    def broken_forward(gguf_file, *, n_threads):
        raise UnsupportedModel("injected forward refusal")

    monkeypatch.setattr(loaded_model, "tokenizer_from_metadata", broken_tokenizer)
    monkeypatch.setattr(architectures, "load", broken_forward)
    assert load_error(own_model).message == "tokenizer.ggml.tokens: injected"
    assert not [thread for thread in threading.enumerate() if thread.name == "ggufsm-load-forward"]
