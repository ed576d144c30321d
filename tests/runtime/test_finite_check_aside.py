"""A load checks that the weights are finite on a thread of its own while it builds the tokenizer; the
errors still come in the validation's order (tokenizer, forward, finite weights), and a failed load holds
nothing."""

from __future__ import annotations

import gc
import shutil
import threading

import pytest

from ggufsm import _core
from ggufsm.reference import architectures
from ggufsm.reference.architectures import shared_forward
from ggufsm.reference.model import loaded_model
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


def test_the_finite_check_runs_on_its_own_thread_while_the_tokenizer_is_built_on_the_callers(own_model, monkeypatch):
    threads: dict[str, str] = {}
    check, build_tokenizer = loaded_model.check_finite_weights, loaded_model.tokenizer_from_metadata

    def finite(*args, **kwargs):
        threads["finite"] = threading.current_thread().name
        return check(*args, **kwargs)

    def tokenizer(*args, **kwargs):
        threads["tokenizer"] = threading.current_thread().name
        return build_tokenizer(*args, **kwargs)

    monkeypatch.setattr(loaded_model, "check_finite_weights", finite)
    monkeypatch.setattr(loaded_model, "tokenizer_from_metadata", tokenizer)
    runtime = load(own_model)
    try:
        assert threads == {"finite": "ggufsm-finite-check", "tokenizer": threading.current_thread().name}
        assert runtime.generate([1, 2, 3], 2, temperature=0.0).token_ids
    finally:
        runtime.free()


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

    def not_finite(gguf_file):
        raise InvalidModel("injected: a NaN")

    monkeypatch.setattr(architectures, "load", broken_forward)
    monkeypatch.setattr(loaded_model, "check_finite_weights", not_finite)
    assert load_error(own_model).message == "injected forward refusal"
    monkeypatch.undo()
    monkeypatch.setattr(loaded_model, "check_finite_weights", not_finite)
    assert load_error(own_model).message == "injected: a NaN"


def test_a_load_failed_in_the_forward_holds_no_file(own_model, monkeypatch):
    path = own_model
    gc.collect()  # what earlier tests left to the collector
    before = _core.open_model_count()

    def broken_forward(gguf_file, *, n_threads):
        raise UnsupportedModel("injected forward refusal")

    monkeypatch.setattr(architectures, "load", broken_forward)
    runtime = Runtime()
    runtime.init_runtime(n_ctx=64, n_threads=1)
    with pytest.raises(UnsupportedModel):
        runtime.load_model(path)
    gc.collect()
    assert runtime.last_error is not None  # the error is kept, and holds no map through its traceback
    assert _core.open_model_count() == before
    runtime.free()
