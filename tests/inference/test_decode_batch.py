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


# ─── the greedy token a call settles as it writes the logits (SessionLogits) ──

def assert_settled(session) -> int:
    """The session's settled greedy token is numpy's argmax of its logits, and greedy_token of its logits view answers it."""
    logits = session.logits
    expected = int(np.argmax(logits))
    assert session.greedy_token == expected
    assert _core.greedy_token(logits) == expected
    return expected


def test_prefill_decode_and_a_batched_decode_each_settle_the_greedy_token_of_the_logits_they_leave(tiny):
    sessions = [_core.LlamaSession(tiny, 32) for _ in PROMPTS]
    assert all(s.greedy_token is None for s in sessions)  # no call has written logits yet
    tokens = []
    for s, prompt in zip(sessions, PROMPTS, strict=True):
        s.prefill(prompt, 0)
        tokens.append(assert_settled(s))
    positions = [len(p) for p in PROMPTS]
    batch = _core.DecodeBatch(tiny)
    for step in range(4):
        if step % 2:
            batch.decode(sessions, tokens, positions)
        else:
            for s, token, pos in zip(sessions, tokens, positions, strict=True):
                s.decode(token, pos)
        tokens = [assert_settled(s) for s in sessions]
        positions = [pos + 1 for pos in positions]


def test_a_refused_call_keeps_the_greedy_token_of_the_logits_it_left_untouched(tiny):
    session = _core.LlamaSession(tiny, 8)
    session.prefill([1, 2, 3], 0)
    before = assert_settled(session)
    with pytest.raises(InvalidInput):
        session.decode(N_VOCAB, 3)
    with pytest.raises(ContextOverflow):
        _core.DecodeBatch(tiny).decode([session, _core.LlamaSession(tiny, 8)], [4, 4], [8, 0])
    assert assert_settled(session) == before


def test_any_array_but_a_sessions_whole_logits_buffer_is_read_as_given(tiny):
    session = _core.LlamaSession(tiny, 16)
    logits = session.prefill([1, 2, 3], 0)
    settled = assert_settled(session)
    other = (settled + 1) % N_VOCAB
    changed = logits.copy()  # a copy (a penalised row is one): its own values, not the session's answer
    changed[other] = logits.max() + 1
    assert _core.greedy_token(changed) == other
    head = logits[:max(settled, 1)]  # from the buffer's first value, shorter: without the settled token
    assert _core.greedy_token(head) == int(np.argmax(head))
    shifted = logits[1:]  # a view one value in: not the buffer's first value
    assert _core.greedy_token(shifted) == int(np.argmax(shifted))


def test_a_view_kept_from_an_earlier_call_answers_for_the_values_it_shows_now(tiny):
    session = _core.LlamaSession(tiny, 16)
    kept = session.prefill([1, 2, 3], 0)
    session.decode(assert_settled(session), 3)
    assert _core.greedy_token(kept) == int(np.argmax(kept)) == session.greedy_token  # the one buffer, rewritten


def test_non_finite_logits_settle_as_the_first_non_finite_index_as_greedy_token_reads_them(tmp_path):
    from ggufsm.conformance.fixtures.overflow import overflow_prompt, write_overflow_llama

    model = model_of(write_overflow_llama(tmp_path / "overflow.gguf", n_ctx=16))
    session = _core.LlamaSession(model, 16)
    logits = session.prefill(overflow_prompt(), 0)
    first_bad = int(np.flatnonzero(~np.isfinite(logits))[0])
    assert session.greedy_token == -1 - first_bad
    assert _core.greedy_token(logits) == -1 - first_bad


def test_with_settling_off_no_greedy_token_is_settled_and_the_greedy_choice_reads_the_row(tiny):
    """The benches' in-process A/B (`_core.set_settled_greedy`): off, every call leaves the token unknown, and
    greedy_token reads the logits themselves, to the same token."""
    sessions = [_core.LlamaSession(tiny, 16) for _ in range(2)]
    _core.set_settled_greedy(False)
    try:
        for s in sessions:
            s.prefill([1, 2, 3], 0)
        _core.DecodeBatch(tiny).decode(sessions, [4, 5], [3, 3])
        for s in sessions:
            assert s.greedy_token is None
            assert _core.greedy_token(s.logits) == int(np.argmax(s.logits))
    finally:
        _core.set_settled_greedy(True)
    sessions[0].decode(6, 4)
    assert_settled(sessions[0])
