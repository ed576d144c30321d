"""Every error leaving a public operation is one the table names in that cell, and the table's path is followed.

Each case below once escaped as a raw Python exception (issue 12): now it is the
table's error, last_error records it where the state after holds one, and the
handle is in the state the table's branch names.
"""

from __future__ import annotations

import gguf
import numpy as np
import pytest

from ggufsm.conformance.fixtures.tiny_models import TinyLlamaSpec, tiny_llama_tensors, write_tiny_llama
from ggufsm.reference.runtime import Runtime
from ggufsm.reference.sampling import GREEDY, Sampler, SamplingConfig
from ggufsm.spec.errors import GgufsmError, InvalidInput, InvalidModel, InvalidSampling
from ggufsm.spec.names import State


def loaded(path) -> Runtime:
    runtime = Runtime()
    runtime.init_runtime(n_ctx=64, n_threads=1)
    runtime.load_model(path)
    return runtime


def assert_table_error(runtime: Runtime, error: GgufsmError, code: type[GgufsmError], state: State) -> None:
    assert isinstance(error, code)
    assert runtime.state == state and error.state_after == state
    if state == State.RecoverableError:
        assert runtime.last_error is error


def test_unknown_init_runtime_setting_is_invalid_input_and_creates_no_runtime():
    runtime = Runtime()
    with pytest.raises(InvalidInput, match="bogus") as raised:
        runtime.init_runtime(bogus=1)
    assert_table_error(runtime, raised.value, InvalidInput, State.Uninitialized)


def test_init_runtime_given_something_else_than_a_config_is_invalid_input():
    runtime = Runtime()
    runtime.init_runtime(n_ctx=64, n_threads=1)
    with pytest.raises(InvalidInput, match="RuntimeConfig"):
        runtime.init_runtime("n_ctx=64")
    assert runtime.state == State.Initialized


@pytest.mark.parametrize("temperature", [1e-310, 5e-324, float("nan"), float("inf")])
def test_subnormal_and_non_finite_temperatures_are_invalid_sampling(tiny_model, temperature):
    runtime = loaded(tiny_model)
    with pytest.raises(InvalidSampling, match="temperature") as raised:
        runtime.generate("Once upon a time", 4, temperature=temperature)
    assert_table_error(runtime, raised.value, InvalidSampling, State.RecoverableError)


def test_the_smallest_normal_temperatures_sample_like_greedy(tiny_model):
    """1e-300 is in range: dividing the shifted scores sends every other token to probability 0."""
    greedy = loaded(tiny_model).generate("Once upon a time", 6, stop_at_eos=False, temperature=0).token_ids
    tiny = loaded(tiny_model).generate("Once upon a time", 6, stop_at_eos=False, temperature=1e-300, top_k=0,
                                       top_p=1.0, min_p=0.0, seed=3).token_ids
    assert tiny == greedy


def test_sampling_refuses_non_finite_logits_with_a_named_error():
    logits = np.zeros(16, dtype=np.float32)
    logits[5] = np.nan
    for config in (GREEDY, SamplingConfig(seed=1)):
        with pytest.raises(InvalidModel, match="non-finite logit.*token id 5"):
            Sampler(config).sample(logits, [])


@pytest.mark.parametrize("operation", ["generate", "generate_next_token"])
def test_a_forward_that_overflows_from_finite_weights_takes_the_logits_finite_branch(tmp_path, operation):
    """Non-finite logits from finite weights (the kit's overflow model): InvalidModel through the table's
    logits_finite branch, RecoverableError with last_error, request cleared; nothing sampled from them."""
    from ggufsm.conformance.fixtures import overflow

    runtime = Runtime()
    runtime.init_runtime(n_ctx=128, n_threads=1)
    runtime.load_model(overflow.write_overflow_llama(tmp_path / "overflow.gguf", n_ctx=512))
    with pytest.raises(InvalidModel, match="non-finite logit.*token id 319") as raised:
        if operation == "generate":
            runtime.generate(overflow.overflow_prompt(), 4, temperature=0.0, stop_at_eos=False)
        else:
            assert runtime.generate(overflow.before_overflow_prompt(), 1, temperature=0.0,
                                    stop_at_eos=False).token_ids == overflow.overflow_prompt()
            runtime.generate_next_token()
    assert_table_error(runtime, raised.value, InvalidModel, State.RecoverableError)
    assert "request" not in runtime.diagnostics()["resident"]
    runtime.reset()   # the model stays: a prompt that does not reach the trigger generates
    assert len(runtime.generate([5], 4, temperature=0.0, stop_at_eos=False).token_ids) == 4


def test_a_prompt_with_a_lone_surrogate_takes_the_invalid_input_branch(tiny_model):
    runtime = loaded(tiny_model)
    with pytest.raises(InvalidInput, match="surrogate") as raised:
        runtime.generate("Once \ud800 upon", 4)
    assert_table_error(runtime, raised.value, InvalidInput, State.RecoverableError)


@pytest.mark.parametrize("tensor", ["blk.0.ffn_up.weight", "token_embd.weight", "output_norm.weight"])
@pytest.mark.parametrize("value", [np.nan, np.inf])
def test_a_model_with_a_non_finite_weight_is_refused_at_load(tmp_path, tensor, value):
    """The table has no generate outcome for a model that cannot compute: the load refuses it."""
    tensors = tiny_llama_tensors(TinyLlamaSpec())
    tensors[tensor].flat[7] = value
    path = write_tiny_llama(tmp_path / "nan.gguf", tensors=tensors)
    runtime = Runtime()
    runtime.init_runtime(n_ctx=64, n_threads=1)
    with pytest.raises(InvalidModel, match=f"'{tensor}'.*NaN or infinite.*byte offset") as raised:
        runtime.load_model(path)
    assert_table_error(runtime, raised.value, InvalidModel, State.RecoverableError)


@pytest.mark.parametrize("matrix_type", ["F16", "BF16", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_0"])
def test_a_non_finite_block_scale_is_found_in_every_quantized_type(tmp_path, matrix_type):
    from ggufsm.reference.model.finite_weights import first_non_finite
    from ggufsm.reference.model.gguf_file import open_gguf

    qtype = gguf.GGMLQuantizationType[matrix_type]
    path = write_tiny_llama(tmp_path / "q.gguf", matrix_type=qtype)
    with open_gguf(path) as model:
        info = model.tensors["blk.1.ffn_down.weight"]
        data = model.tensor_data(info.name)
        assert first_non_finite(data, info.type) is None
        block_bytes = gguf.GGML_QUANT_SIZES[qtype][1]
        broken = np.array(data)   # a writable copy
        nan_bits = np.uint16(0x7FC0) if qtype == gguf.GGMLQuantizationType.BF16 else np.float16(np.nan)
        broken[3 * block_bytes: 3 * block_bytes + 2] = np.frombuffer(nan_bits.tobytes(), np.uint8)
        assert first_non_finite(broken, info.type) == 3 * block_bytes


def test_a_tokenizer_key_of_the_wrong_kind_is_invalid_model_not_a_type_error(tmp_path, monkeypatch):
    monkeypatch.setattr(gguf.GGUFWriter, "add_tokenizer_pre",
                        lambda writer, pre: writer.add_array("tokenizer.ggml.pre", [pre, pre]))
    path = write_tiny_llama(tmp_path / "pre-array.gguf")
    runtime = Runtime()
    runtime.init_runtime(n_ctx=64, n_threads=1)
    with pytest.raises(InvalidModel, match="tokenizer.ggml.pre is an array; expected a string") as raised:
        runtime.load_model(path)
    assert_table_error(runtime, raised.value, InvalidModel, State.RecoverableError)


@pytest.mark.parametrize("key, value, words", [
    ("tokenizer.ggml.add_bos_token", [1, 2], "expected a boolean"),
    ("tokenizer.ggml.bos_token_id", "one", "expected an integer"),
    ("tokenizer.chat_template", 7, "expected a string"),
    ("tokenizer.ggml.merges", [1, 2], "merges\\[0\\] is int"),
    ("tokenizer.ggml.token_type", ["x"] * 300, "token_type holds values"),
    ("tokenizer.ggml.token_type", [6] * 300, "typed BYTE but is not spelled"),   # found at load, not at decode
])
def test_every_tokenizer_key_is_checked_for_its_kind(key, value, words):
    from ggufsm.conformance.fixtures.vocabulary import bpe_vocabulary
    from ggufsm.reference.tokenizers.tokenizer import tokenizer_from_metadata

    tokens, types, merges = bpe_vocabulary(300)
    metadata = {"tokenizer.ggml.model": "gpt2", "tokenizer.ggml.pre": "smollm", "tokenizer.ggml.tokens": tokens,
                "tokenizer.ggml.token_type": types, "tokenizer.ggml.merges": merges, key: value}
    with pytest.raises(InvalidModel, match=words):
        tokenizer_from_metadata(metadata)


def test_over_the_protocol_these_are_the_table_codes_not_internal_error(tiny_model, tmp_path):
    from ggufsm.conformance.adapters.reference import ReferenceAdapter

    tensors = tiny_llama_tensors(TinyLlamaSpec())
    tensors["blk.0.attn_q.weight"].flat[0] = np.nan
    nan_model = write_tiny_llama(tmp_path / "nan.gguf", tensors=tensors)
    adapter = ReferenceAdapter()
    assert adapter.call("init_runtime", {"bogus": 1}).code == "InvalidInput"
    assert adapter.call("init_runtime", {"n_ctx": 64, "n_threads": 1}).ok
    assert adapter.call("load_model", {"path": str(nan_model)}).code == "InvalidModel"
    assert adapter.call("reset").ok and adapter.call("load_model", {"path": str(tiny_model)}).ok
    for sampling in ({"temperature": 1e-310}, {"top_p": float("nan")}):
        assert adapter.call("generate", {"prompt": "Once", "max_tokens": 2, "sampling": sampling}).code == "InvalidSampling"
    assert adapter.call("generate", {"prompt": "Once \ud800", "max_tokens": 2}).code == "InvalidInput"


def test_a_failed_load_after_free_names_only_the_files_problem(tmp_path):
    """The load from a state without a model asks model_resident first (false: "no model is loaded"); that is
    not why the load failed, so it is not in the message (it used to be its first words)."""
    from ggufsm.spec.errors import ModelNotLoaded, ModelUnavailable

    runtime = Runtime()
    runtime.init_runtime(n_ctx=64)
    missing = tmp_path / "no-such-model.gguf"
    with pytest.raises(ModelUnavailable) as first:
        runtime.load_model(missing)
    assert runtime.state == State.RecoverableError
    with pytest.raises(ModelUnavailable) as again:   # RecoverableError.load_model: model_resident is asked first
        runtime.load_model(missing)
    for caught in (first, again):
        assert "no model is loaded" not in caught.value.message
        assert caught.value.message.startswith("no model file")
    with pytest.raises(ModelNotLoaded, match="no model is loaded"):   # where model_resident decides, it says so
        runtime.generate("Hello", 4)
