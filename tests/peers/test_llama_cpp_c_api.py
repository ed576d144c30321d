"""llama.cpp's C API adapter maps each operation to the C call and adds nothing (opt-in: needs llama-cpp-python,
whose low-level `llama_cpp` module is the C API through ctypes)."""

from __future__ import annotations

import pytest

from ggufsm.conformance.adapter import NOT_SUPPORTED
from ggufsm.spec.names import ErrorCode

pytestmark = pytest.mark.peer
llama_cpp = pytest.importorskip("llama_cpp", reason="llama-cpp-python (the C API's ctypes bindings) is not installed")


@pytest.fixture
def adapter():
    from ggufsm.conformance.adapters.llama_cpp_c import make_adapter

    made = make_adapter()
    yield made
    made.close()


def _loaded(adapter, inputs):
    assert adapter.call("init_runtime", {"n_ctx": 64, "n_threads": 1}).ok
    reply = adapter.call("load_model", {"path": inputs.model})
    assert reply.ok, reply.describe()
    return reply


def test_a_null_model_load_is_one_error_whatever_the_cause_and_names_llamas_log_line(adapter, tiny_inputs):
    assert adapter.call("init_runtime", {"n_ctx": 64}).ok
    for path in (tiny_inputs.missing_model, tiny_inputs.corrupt_model, tiny_inputs.unsupported_model):
        reply = adapter.call("load_model", {"path": path})
        assert reply.code == ErrorCode.InvalidModel
        assert "llama_model_load_from_file returned NULL" in reply.error.message
    assert adapter.call("generate", {"prompt": "a", "max_tokens": 1}).code == ErrorCode.ModelNotLoaded


def test_greedy_generate_gives_the_tokens_of_llamas_own_sampler_loop(adapter, tiny_inputs):
    _loaded(adapter, tiny_inputs)
    reply = adapter.call("generate", {"prompt": [1, 2, 3], "max_tokens": 5, "stop_at_eos": False})
    assert reply.ok, reply.describe()
    llm = llama_cpp.Llama(model_path=tiny_inputs.model, n_ctx=64, n_threads=1, verbose=False)
    expected = []
    for token in llm.generate([1, 2, 3], temp=0.0):
        expected.append(int(token))
        if len(expected) == 5:
            break
    llm.close()
    assert reply.value["token_ids"] == expected
    assert reply.value["finish_reason"] == "length"


def test_free_releases_the_context_and_model_and_generation_then_finds_no_model(adapter, tiny_inputs):
    _loaded(adapter, tiny_inputs)
    assert adapter.call("free").ok
    assert adapter.call("generate", {"prompt": [1], "max_tokens": 1}).code == ErrorCode.ModelNotLoaded
    assert adapter.call("generate_next_token").code == ErrorCode.ModelNotLoaded


def test_a_token_id_outside_the_vocabulary_is_llama_decodes_invalid_batch(adapter, tiny_inputs):
    loaded = _loaded(adapter, tiny_inputs)
    reply = adapter.call("generate", {"prompt": [loaded.value["n_vocab"]], "max_tokens": 1})
    assert reply.code == ErrorCode.InvalidInput and "llama_decode returned -1" in reply.error.message


def test_operations_with_no_c_counterpart_are_not_supported_never_passes(adapter):
    for op in ("replace_model", "state", "last_error", "diagnostics"):
        assert adapter.call(op, {}).code == NOT_SUPPORTED
