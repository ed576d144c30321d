"""Several sessions' decode steps as one forward pass (`_core.DecodeBatch`, cpp/forward/batch.cpp).

The rule: batching is invisible in the numbers. Each session in a batch gets
the very logits (to the last bit) its own decode() would have left, at its own
position over its own KV cache, while the weights are read once for all; and a
batch with a bad entry evaluates nothing for any session.
"""

from __future__ import annotations

import numpy as np
import pytest

from ggufsm import _core
from ggufsm.conformance.fixtures.tiny_models import TinyLlamaSpec, write_tiny_gemma3, write_tiny_llama
from ggufsm.reference.model.gguf_file import open_gguf
from ggufsm.spec.errors import ContextOverflow, InvalidInput

PROMPTS = [[1, 2, 3, 4, 5], [7, 8, 9], [11, 12, 13, 14, 15, 16, 17], [20]]
N_VOCAB = TinyLlamaSpec().n_vocab


def model_of(path):
    return _core.LlamaModel(open_gguf(path).core, 2)


def assert_batched_equals_alone(model, steps: int, n_ctx: int = 64):
    """Sessions decoding alone and twins decoding as one batch, from the same prompts: equal logits."""
    alone = [_core.LlamaSession(model, n_ctx) for _ in PROMPTS]
    together = [_core.LlamaSession(model, n_ctx) for _ in PROMPTS]
    batch = _core.DecodeBatch(model)
    tokens, positions = [], [len(p) for p in PROMPTS]
    for a, t, prompt in zip(alone, together, PROMPTS, strict=True):
        logits = a.prefill(prompt, 0).copy()
        np.testing.assert_array_equal(t.prefill(prompt, 0), logits)
        tokens.append(int(np.argmax(logits)))
    for _ in range(steps):
        expected = [a.decode(token, pos).copy() for a, token, pos in zip(alone, tokens, positions, strict=True)]
        batch.decode(together, tokens, positions)
        for t, logits in zip(together, expected, strict=True):
            np.testing.assert_array_equal(t.logits, logits)
        tokens = [int(np.argmax(logits)) for logits in expected]
        positions = [pos + 1 for pos in positions]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return model_of(write_tiny_llama(tmp_path_factory.mktemp("batch") / "tiny.gguf"))


def test_each_session_of_a_batch_gets_the_logits_its_own_decode_gives_tiny_llama(tiny):
    assert_batched_equals_alone(tiny, steps=6)


def test_each_session_of_a_batch_gets_the_logits_its_own_decode_gives_tiny_gemma3(tmp_path):
    assert_batched_equals_alone(model_of(write_tiny_gemma3(tmp_path / "g.gguf")), steps=6)


@pytest.mark.real_model
@pytest.mark.parametrize("name", ["smollm2", "gemma3"])
def test_each_session_of_a_batch_gets_the_logits_its_own_decode_gives_real_models(name, request):
    path = request.getfixturevalue(f"{name}_path")
    assert_batched_equals_alone(model_of(path), steps=4)


def test_a_batch_of_one_is_the_sessions_own_decode(tiny):
    alone, batched = _core.LlamaSession(tiny, 32), _core.LlamaSession(tiny, 32)
    expected = alone.prefill([1, 2, 3], 0).copy()
    batched.prefill([1, 2, 3], 0)
    _core.DecodeBatch(tiny).decode([batched], [int(np.argmax(expected))], [3])
    np.testing.assert_array_equal(batched.logits, alone.decode(int(np.argmax(expected)), 3))


def bad_batch_leaves_every_session_untouched(model, bad_call, error, match):
    """Runs bad_call(batch, sessions) and checks it raised and evaluated nothing: each session's logits
    are unchanged and its next decode equals that of a twin that never saw the failed call."""
    sessions = [_core.LlamaSession(model, 16) for _ in range(3)]
    twins = [_core.LlamaSession(model, 16) for _ in range(3)]
    for s, t in zip(sessions, twins, strict=True):
        s.prefill([1, 2], 0)
        t.prefill([1, 2], 0)
    before = [s.logits.copy() for s in sessions]
    with pytest.raises(error, match=match):
        bad_call(_core.DecodeBatch(model), sessions)
    for s, t, logits in zip(sessions, twins, before, strict=True):
        np.testing.assert_array_equal(s.logits, logits)
        np.testing.assert_array_equal(s.decode(4, 2).copy(), t.decode(4, 2))


def test_a_token_outside_the_vocabulary_in_one_entry_evaluates_nothing_for_any_session(tiny):
    bad_batch_leaves_every_session_untouched(
        tiny, lambda b, s: b.decode(s, [4, N_VOCAB, 4], [2, 2, 2]), InvalidInput, f"session 1 .*token id {N_VOCAB}")


def test_a_position_past_one_sessions_context_is_context_overflow_and_evaluates_nothing(tiny):
    bad_batch_leaves_every_session_untouched(tiny, lambda b, s: b.decode(s, [4, 4, 4], [2, 2, 16]), ContextOverflow,
                                             "session 2 .*context of 16")


def test_a_session_twice_in_one_batch_is_invalid_input(tiny):
    bad_batch_leaves_every_session_untouched(tiny, lambda b, s: b.decode([s[0], s[1], s[0]], [4, 4, 4], [2, 2, 2]),
                                             InvalidInput, "appears twice")


def test_one_token_and_one_position_per_session_or_invalid_input(tiny):
    bad_batch_leaves_every_session_untouched(tiny, lambda b, s: b.decode(s, [4, 4], [2, 2, 2]), InvalidInput,
                                             "one token and one position per session")


def test_a_session_of_another_model_is_invalid_input(tiny, tmp_path):
    other = model_of(write_tiny_llama(tmp_path / "other.gguf"))
    bad_batch_leaves_every_session_untouched(
        tiny, lambda b, s: b.decode([s[0], _core.LlamaSession(other, 16)], [4, 4], [2, 0]), InvalidInput, "another model")


def test_an_empty_batch_is_invalid_input(tiny):
    with pytest.raises(InvalidInput, match="at least one session"):
        _core.DecodeBatch(tiny).decode([], [], [])
