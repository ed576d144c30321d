"""The fused C++ forward (reference/architectures/fused.py over ggufsm._core) equals the numpy reference on tiny synthetic models.

Tolerances. With float32 matrices both forwards compute in float32 with
float32 activations, so they agree to float32 summation noise (1e-4). With
quantized matrices both round every activation to 8 bits per block by the same
rule (cpp/kernels/matmul.h; reference/architectures/llama.py round_activations), but
a value that float32 summation order puts on the other side of a rounding
boundary moves by a whole step (amax/127), and a few layers amplify that: the
numpy reference differs from *itself* by up to 0.6 % of the logit range
between batched prefill and token-by-token decode. Hence 2 % of the range
there, and the greedy tokens must be the same.
"""

from __future__ import annotations

import threading

import numpy as np
import pytest
from gguf import GGMLQuantizationType as T

from ggufsm.conformance.fixtures.tiny_models import (
    GEMMA3_Q4_K_M_TYPES,
    TinyGemma3Spec,
    TinyLlamaSpec,
    tiny_gemma3_tensors,
    tiny_llama_tensors,
    write_tiny_gemma3,
    write_tiny_llama,
)
from ggufsm.reference.architectures import load_tensors
from ggufsm.reference.architectures.weights import read_tensors
from ggufsm.spec.errors import ContextOverflow, InvalidInput, InvalidModel, ModelNotLoaded, UnsupportedModel

TOKENS = [5, 17, 3, 88, 42, 0, 95, 11, 64, 7, 30, 2]
N_VOCAB = TinyLlamaSpec().n_vocab  # the tiny model's vocabulary size: the first id outside it
EXACT = 1e-4
# Unquantized weights: the engines differ by float32 summation order, and where a key or value
# lies within that noise of a float16 rounding boundary the two caches round it to neighbouring
# halves (a step of 2^-11 relative). Measured on these models: at most 4.9e-4 with logits
# spanning 12-15, i.e. 3.3e-5 of the range (1e-4 absolute held before the cache held halves).
EXACT_SHARE_OF_RANGE = 1e-4
Q8_SHARE_OF_RANGE = 0.02


def both_engines(path):
    tensors = read_tensors(path)
    return load_tensors(tensors, engine="numpy"), load_tensors(tensors, n_threads=2, engine="fused")


def assert_logits_close(fused, reference, quantized: bool):
    tolerance = (Q8_SHARE_OF_RANGE if quantized else EXACT_SHARE_OF_RANGE) * float(np.ptp(reference))
    np.testing.assert_allclose(fused, reference, rtol=0, atol=tolerance)


def greedy(model, prompt, n_tokens, n_ctx=64):
    session = model.new_session(n_ctx)
    logits, tokens = session.prefill(prompt, 0), []
    for step in range(n_tokens):
        tokens.append(int(np.argmax(logits)))
        logits = session.decode(tokens[-1], len(prompt) + step)
    return tokens


LLAMA_TYPES = [T.F32, T.F16, T.Q8_0, T.Q4_0, T.Q4_1, T.Q5_0, T.Q5_1]
GEMMA3_SPECS = {
    "gemma3-F32": TinyGemma3Spec(matrix_type=T.F32),
    "gemma3-Q8_0": TinyGemma3Spec(),
    "gemma3-Q4_K_M-mix": TinyGemma3Spec(type_overrides=GEMMA3_Q4_K_M_TYPES),
}


def write_tiny(directory, name):
    if name in GEMMA3_SPECS:
        return write_tiny_gemma3(directory / "tiny.gguf", GEMMA3_SPECS[name])
    return write_tiny_llama(directory / "tiny.gguf", TinyLlamaSpec(matrix_type=T[name.removeprefix("llama-")]))


def is_quantized(name):
    return not name.endswith(("F32", "F16"))


@pytest.fixture(scope="module", params=[f"llama-{t.name}" for t in LLAMA_TYPES] + list(GEMMA3_SPECS))
def tiny_pair(request, tmp_path_factory):
    """(quantized, numpy reference, fused) over one tiny model."""
    return is_quantized(request.param), *both_engines(write_tiny(tmp_path_factory.mktemp("tiny"), request.param))


@pytest.fixture(scope="module", params=["llama-F32", "llama-Q4_1"])
def tiny_llama(request, tmp_path_factory):
    return is_quantized(request.param), *both_engines(write_tiny(tmp_path_factory.mktemp("tiny"), request.param))


# ---------------------------------------------------------------- equal to the reference

def test_fused_prefill_logits_equal_the_numpy_reference(tiny_pair):
    quantized, reference, fused = tiny_pair
    assert_logits_close(fused.new_session(32).prefill(TOKENS), reference.new_session(32).prefill(TOKENS), quantized)


def test_fused_decode_logits_equal_the_numpy_reference_at_every_step(tiny_pair):
    quantized, reference, fused = tiny_pair
    ours, theirs = fused.new_session(32), reference.new_session(32)
    for pos, token in enumerate(TOKENS):
        assert_logits_close(ours.decode(token, pos), theirs.decode(token, pos), quantized)


def test_fused_greedy_tokens_equal_the_numpy_reference_for_32_tokens(tiny_pair):
    _, reference, fused = tiny_pair
    assert greedy(fused, TOKENS[:4], 32) == greedy(reference, TOKENS[:4], 32)


@pytest.mark.parametrize("engine", ["numpy", "fused"])
def test_sliding_window_matters_only_past_its_length(tmp_path, engine):
    """Gemma's sliding layers see 4 positions: with at most 4 tokens a windowed model equals one without
    windows (one RoPE base for all layers here, so that only the window differs); past that the two differ."""
    tensors = tiny_gemma3_tensors(TinyGemma3Spec())
    windowed, unwindowed = (
        load_tensors(read_tensors(write_tiny_gemma3(
            tmp_path / f"w{window}.gguf", TinyGemma3Spec(matrix_type=T.F32, sliding_window=window, rope_freq_base=10000.0), tensors)),
            engine=engine)
        for window in (4, 0)
    )
    np.testing.assert_allclose(windowed.new_session(32).prefill(TOKENS[:4]), unwindowed.new_session(32).prefill(TOKENS[:4]), atol=EXACT)
    assert np.abs(windowed.new_session(32).prefill(TOKENS) - unwindowed.new_session(32).prefill(TOKENS)).max() > 1e-2


# ---------------------------------------------------------------- sessions

def test_prefill_in_chunks_of_n_batch_equals_one_prefill(tiny_pair):
    quantized, _, fused = tiny_pair
    whole = fused.new_session(32).prefill(TOKENS)
    chunked = fused.new_session(32, n_batch=5).prefill(TOKENS)
    np.testing.assert_array_equal(chunked, whole) if not quantized else assert_logits_close(chunked, whole, quantized)


def test_batched_prefill_equals_token_by_token_decode(tiny_pair):
    quantized, _, fused = tiny_pair
    batched = fused.new_session(32).prefill(TOKENS)
    session = fused.new_session(32)
    for pos, token in enumerate(TOKENS):
        stepped = session.decode(token, pos)
    assert_logits_close(stepped, batched, quantized)


def test_decode_at_an_earlier_position_overwrites_the_rest_of_the_sequence(tiny_llama):
    _, _, fused = tiny_llama
    session = fused.new_session(32)
    session.prefill(TOKENS, 0)
    np.testing.assert_array_equal(session.decode(9, 4), fused.new_session(32).prefill(TOKENS[:4] + [9]))


def test_sessions_over_one_model_do_not_share_a_cache(tiny_llama):
    _, _, fused = tiny_llama
    first, second = fused.new_session(16), fused.new_session(16)
    first.prefill(TOKENS[:5])
    second.prefill(TOKENS[5:])
    np.testing.assert_array_equal(first.decode(TOKENS[5], 5), fused.new_session(16).prefill(TOKENS[:6]))


def test_sessions_on_two_threads_give_each_its_own_result(tiny_llama):
    _, _, fused = tiny_llama
    expected = {i: fused.new_session(32).prefill(TOKENS[i:]) for i in range(4)}
    results = {}

    def run(i):
        session = fused.new_session(32)
        for _ in range(20):
            results[i] = session.prefill(TOKENS[i:])

    threads = [threading.Thread(target=run, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for i in range(4):
        np.testing.assert_array_equal(results[i], expected[i])


def test_session_memory_is_reported_by_buffer(tiny_llama):
    _, _, fused = tiny_llama
    session = fused.new_session(16)
    spec = TinyLlamaSpec()
    kv = 2 * spec.n_layer * spec.n_head_kv * 16 * spec.head_dim * 2  # k and v: [n_layer, n_head_kv, n_ctx, hd] float16
    assert session.nbytes["kv_cache"] == kv
    assert session.nbytes["logits"] == spec.n_vocab * 4
    assert session.nbytes["scratch"] > 0
    session.close()
    assert session.nbytes == {"kv_cache": 0, "scratch": 0, "logits": 0}


def test_the_kv_cache_is_half_precision_over_whole_key_tiles(tiny_llama):
    _, _, fused = tiny_llama
    spec = TinyLlamaSpec()
    session = fused.new_session(20)  # attention reads keys in tiles of 16 positions: 20 rounds up to 32
    assert session.nbytes["kv_cache"] == 2 * spec.n_layer * spec.n_head_kv * 32 * spec.head_dim * 2
    session.close()


def test_a_closed_session_or_model_refuses_to_run(tmp_path):
    fused = load_tensors(read_tensors(write_tiny_llama(tmp_path / "tiny.gguf")), engine="fused")
    session = fused.new_session(16)
    session.close()
    with pytest.raises(ModelNotLoaded):
        session.decode(1, 0)
    other = fused.new_session(16)
    fused.close()
    with pytest.raises(ModelNotLoaded):
        other.decode(1, 0)
    with pytest.raises(ModelNotLoaded):
        fused.new_session(16)


def test_model_reads_the_file_bytes_in_place(tmp_path):
    path = write_tiny_llama(tmp_path / "tiny.gguf")
    tensors = read_tensors(path)
    fused = load_tensors(tensors, engine="fused")
    assert fused.nbytes["weights_mapped"] == sum(t.data.nbytes for t in tensors.tensors.values())
    assert all(not t.data.flags.owndata for t in tensors.tensors.values())  # views of the file's map, handed over as is


# ---------------------------------------------------------------- bad input

@pytest.mark.parametrize("bad_call, error, message", [
    (lambda s: s.prefill([1, N_VOCAB, 2]), InvalidInput, f"token id {N_VOCAB} at index 1"),
    (lambda s: s.prefill([-1]), InvalidInput, "token id -1 at index 0"),
    (lambda s: s.prefill([2**63]), InvalidInput, "outside the vocabulary"),
    (lambda s: s.prefill([1.5]), InvalidInput, "must be integers"),
    (lambda s: s.prefill([]), InvalidInput, "no tokens"),
    (lambda s: s.decode(1, -1), InvalidInput, "start position -1 is negative"),
    (lambda s: s.prefill([1, 2, 3], 14), ContextOverflow, "positions 14..16 do not fit the context of 16"),
    (lambda s: s.decode(1, 16), ContextOverflow, "positions 16..16"),
])
def test_bad_tokens_are_invalid_input_and_positions_past_the_context_overflow(tmp_path, bad_call, error, message):
    session = load_tensors(read_tensors(write_tiny_llama(tmp_path / "tiny.gguf")), engine="fused").new_session(16)
    with pytest.raises(error, match=message):
        bad_call(session)


def test_a_rejected_call_evaluates_nothing(tmp_path):
    fused = load_tensors(read_tensors(write_tiny_llama(tmp_path / "tiny.gguf")), engine="fused")
    session = fused.new_session(16)
    first = session.prefill(TOKENS[:3])
    with pytest.raises(InvalidInput):
        session.prefill([4, 500], 3)
    np.testing.assert_array_equal(session.decode(TOKENS[3], 3), fused.new_session(16).prefill(TOKENS[:4]))
    assert first.shape == (N_VOCAB,)


def fused_from(tmp_path, spec=None, tensors=None):
    return load_tensors(read_tensors(write_tiny_llama(tmp_path / "bad.gguf", spec, tensors)), engine="fused")


def test_missing_layer_tensor_is_invalid_model_naming_it(tmp_path):
    with pytest.raises(InvalidModel, match="missing tensor 'blk.1.ffn_up.weight'"):
        fused_from(tmp_path, TinyLlamaSpec(drop_tensors=("blk.1.ffn_up.weight",)))


def test_tensor_of_the_wrong_shape_is_invalid_model_naming_it(tmp_path):
    spec = TinyLlamaSpec(matrix_type=T.F32)
    tensors = tiny_llama_tensors(spec)
    tensors["blk.0.attn_k.weight"] = np.zeros((64, 64), np.float32)
    with pytest.raises(InvalidModel, match=r"'blk.0.attn_k.weight'.*shape \[64, 64\], but .* = \[64, 32\]"):
        fused_from(tmp_path, spec, tensors)


def test_a_tensor_the_forward_would_ignore_is_unsupported(tmp_path):
    with pytest.raises(UnsupportedModel, match="blk.0.attn_q.bias"):
        fused_from(tmp_path, TinyLlamaSpec(extra_tensors={"blk.0.attn_q.bias": np.zeros(64, np.float32)}))


def test_gemma3_without_its_qk_norms_is_invalid_model(tmp_path):
    spec = TinyGemma3Spec()
    tensors = tiny_gemma3_tensors(spec)
    del tensors["blk.3.attn_k_norm.weight"]
    with pytest.raises(InvalidModel, match="blk.3.attn_k_norm.weight"):
        load_tensors(read_tensors(write_tiny_gemma3(tmp_path / "g.gguf", spec, tensors)), engine="fused")


def test_unknown_engine_is_invalid_input(tmp_path):
    with pytest.raises(InvalidInput, match="engine is 'gpu'"):
        load_tensors(read_tensors(write_tiny_llama(tmp_path / "tiny.gguf")), engine="gpu")


# ---------------------------------------------------------------- built from the C++ core's own file

def test_the_fused_forward_built_from_the_parsed_file_equals_the_numpy_oracle(tmp_path):
    """No hyperparameter crosses from Python: the C++ model takes the file the C++ core validated."""
    from ggufsm import _core
    from ggufsm.reference.architectures import load_reference_model
    from ggufsm.reference.model.gguf_file import open_gguf

    path = write_tiny_gemma3(tmp_path / "g.gguf", GEMMA3_SPECS["gemma3-F32"])
    session = _core.LlamaSession(_core.LlamaModel(open_gguf(path).core, 2), 32)
    reference = load_reference_model(read_tensors(path)).new_session(32)
    assert_logits_close(session.prefill(TOKENS, 0), reference.prefill(TOKENS), quantized=False)


def test_the_fused_model_takes_only_a_validated_file():
    from ggufsm import _core

    with pytest.raises(TypeError):
        _core.LlamaModel({"n_vocab": 96, "n_embd": 64}, 1)


# ---------------------------------------------------------------- logits held once

def test_logits_are_the_sessions_own_buffer_not_a_copy_per_token(tiny_llama):
    _, _, fused = tiny_llama
    session = fused.new_session(32)
    first = session.prefill(TOKENS[:3])
    address = first.__array_interface__["data"][0]
    for pos, token in enumerate(TOKENS[3:8], start=3):
        logits = session.decode(token, pos)
        assert logits.__array_interface__["data"][0] == address
        assert not logits.flags.writeable and not logits.flags.owndata
    np.testing.assert_array_equal(first, logits)  # one buffer: an earlier view shows the latest call's logits


def test_a_logits_view_stays_readable_after_its_session_is_gone(tiny_llama):
    _, _, fused = tiny_llama
    session = fused.new_session(16)
    logits = session.prefill(TOKENS[:4])
    expected = logits.copy()
    session.close()
    del session
    np.testing.assert_array_equal(logits, expected)


def test_the_sampler_never_writes_into_the_logits(tiny_llama):
    from ggufsm.reference.sampling import Sampler, SamplingConfig

    _, _, fused = tiny_llama
    logits = fused.new_session(16).prefill(TOKENS[:4])
    before = logits.copy()
    config = SamplingConfig(temperature=0.7, top_k=5, top_p=0.9, min_p=0.01, repetition_penalty=1.3, seed=3)
    Sampler(config).sample(logits, TOKENS[:4])  # a write into a read-only array would raise
    np.testing.assert_array_equal(logits, before)


# ---------------------------------------------------------------- token ids: one rule

@pytest.mark.parametrize("tokens, message", [
    ([1, N_VOCAB, 2], f"token id {N_VOCAB} at index 1 is outside the vocabulary"),
    ([2**63], "outside the vocabulary"),
    ([True], "must be integers"),
    ([1.0], "must be integers"),
])
def test_the_model_checks_token_ids_by_the_rule_its_sessions_apply(tmp_path, tokens, message):
    fused = load_tensors(read_tensors(write_tiny_llama(tmp_path / "tiny.gguf")), engine="fused")
    with pytest.raises(InvalidInput, match=message):
        fused.check_token_ids(tokens)
    with pytest.raises(InvalidInput, match=message):
        fused.new_session(16).prefill(tokens)
    fused.check_token_ids(np.array([0, N_VOCAB - 1], np.uint16))


def test_a_value_width_unlike_the_key_width_is_unsupported_naming_the_entry(tmp_path):
    import struct

    from ggufsm.conformance.fixtures import corrupt

    path = write_tiny_gemma3(tmp_path / "g.gguf", TinyGemma3Spec())
    site = corrupt.read_layout(path).kv("gemma3.attention.value_length")
    data = bytearray(path.read_bytes())
    struct.pack_into("<I", data, site.value, 32)
    with pytest.raises(UnsupportedModel, match=r"'gemma3.attention.value_length' \(entry at offset \d+\): value width 32"):
        load_tensors(read_tensors(write_bytes(tmp_path / "v.gguf", data)), engine="fused")


def write_bytes(path, data):
    path.write_bytes(bytes(data))
    return path
