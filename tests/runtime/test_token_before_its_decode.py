"""A sampled token is handed out before its own decode step; the decode runs when the next token is asked for.

The tokens, the positions taken and the retry after a failed step are what
they were when every token was decoded before it was emitted.
"""

from __future__ import annotations

import numpy as np
import pytest

from ggufsm.reference.architectures.fused import FusedSession
from ggufsm.reference.runtime.request import Request
from ggufsm.reference.sampling import Sampler, SamplingConfig
from ggufsm.spec.errors import ModelUnavailable
from ggufsm.spec.names import FinishReason, State

PROMPT = [1, 5, 9, 3]


@pytest.fixture
def forward_calls(monkeypatch):
    calls: list[str] = []
    prefill, decode = FusedSession.prefill, FusedSession.decode

    def counted_prefill(self, tokens, start_pos=0):
        calls.append("prefill")
        return prefill(self, tokens, start_pos)

    def counted_decode(self, token, pos):
        calls.append(f"decode {token}@{pos}")
        return decode(self, token, pos)

    monkeypatch.setattr(FusedSession, "prefill", counted_prefill)
    monkeypatch.setattr(FusedSession, "decode", counted_decode)
    return calls


def test_the_first_token_needs_the_prefill_and_no_decode_step(ready_runtime, forward_calls):
    generation = ready_runtime.generate(PROMPT, 1, stop_at_eos=False, temperature=0.0)
    assert len(generation.token_ids) == 1
    assert forward_calls == ["prefill"]


def test_each_later_token_decodes_the_one_before_it_at_its_position(ready_runtime, forward_calls):
    generation = ready_runtime.generate(PROMPT, 4, stop_at_eos=False, temperature=0.0)
    tokens = generation.token_ids
    assert forward_calls == ["prefill"] + [f"decode {tokens[i]}@{len(PROMPT) + i}" for i in range(3)]


def test_continuing_decodes_the_owed_token_and_gives_the_one_shot_tokens(tiny_model):
    from ggufsm.reference.runtime import Runtime

    def fresh() -> Runtime:
        runtime = Runtime()
        runtime.init_runtime(n_ctx=64, n_threads=1)
        runtime.load_model(tiny_model)
        return runtime

    one_shot, stepped = fresh(), fresh()
    try:
        expected = one_shot.generate(PROMPT, 6, stop_at_eos=False, temperature=0.0).token_ids
        first = stepped.generate(PROMPT, 2, stop_at_eos=False, temperature=0.0).token_ids
        rest = [stepped.generate_next_token().token_id for _ in range(4)]
        assert first + rest == expected
        assert stepped.state == State.ContinuationReady
        assert stepped.diagnostics()["context"]["used"] == len(PROMPT) + 6  # every token's position is taken
    finally:
        one_shot.free()
        stepped.free()


def test_the_last_position_of_the_context_still_takes_a_token(tiny_model):
    from ggufsm.reference.runtime import Runtime

    runtime = Runtime()
    runtime.init_runtime(n_ctx=8, n_threads=1)
    runtime.load_model(tiny_model)
    try:
        generation = runtime.generate(PROMPT, 100, stop_at_eos=False, temperature=0.0)
        assert len(generation.token_ids) == 8 - len(PROMPT)
        assert generation.finish_reason == FinishReason.context
    finally:
        runtime.free()


class FlakySession:
    """A session whose logits favour token (last token + 1) % 16, and whose chosen decode step fails once."""

    n_ctx = 64

    def __init__(self, fail_at_step: int):
        self.fail_at_step, self.steps = fail_at_step, 0

    @staticmethod
    def logits_after(token: int) -> np.ndarray:
        logits = np.zeros(16, dtype=np.float32)
        logits[(token + 1) % 16] = 1.0
        return logits

    def prefill(self, tokens, start_pos):
        return self.logits_after(tokens[-1])

    def decode(self, token, pos):
        self.steps += 1
        if self.steps == self.fail_at_step:
            raise ModelUnavailable("the model file changed")
        return self.logits_after(token)


def greedy_request() -> Request:
    from ggufsm.reference.tokenizers.tokenizer import StreamDecoder

    class Pieces:
        def token_to_piece(self, token_id, *, special):
            return b"x"

        def _strips_leading_space(self):
            return False

    return Request(list(PROMPT), Sampler(SamplingConfig(temperature=0.0)), StreamDecoder(Pieces()), {})  # type: ignore[arg-type]


def test_a_failed_decode_step_leaves_its_token_owed_and_a_retry_goes_on_as_before():
    session = FlakySession(fail_at_step=2)
    request = greedy_request()
    request.prefill(session)
    tokens = [request.next_token(session).token_id for _ in range(2)]
    with pytest.raises(ModelUnavailable):
        request.next_token(session)
    assert (request.pending, request.n_past, request.generated_token_ids) == (tokens[-1], len(PROMPT) + 2, tokens)
    tokens += [request.next_token(session).token_id for _ in range(3)]
    assert tokens == [4, 5, 6, 7, 8]


def test_the_decode_rate_counts_the_decode_steps_run_not_the_tokens_emitted(ready_runtime):
    generation = ready_runtime.generate(PROMPT, 4, stop_at_eos=False, temperature=0.0)
    assert generation.timings["decode_tok_s"] == pytest.approx(3 / generation.timings["decode_s"])
    single = ready_runtime.generate(PROMPT, 1, stop_at_eos=False, temperature=0.0)
    assert single.timings["decode_s"] == 0.0 and single.timings["decode_tok_s"] == 0.0


def test_the_sampler_sees_the_prompt_then_every_token_generated_so_far():
    """The repetition penalty's window: the request's tokens, kept as they come (not joined anew per token)."""
    seen: list[list[int]] = []
    request = greedy_request()
    sample = request.sampler.sample

    def recorded(logits, recent_tokens):
        seen.append(list(recent_tokens))
        return sample(logits, recent_tokens)

    request.sampler.sample = recorded  # type: ignore[method-assign]
    session = FlakySession(fail_at_step=0)
    request.prefill(session)
    tokens = [request.next_token(session).token_id for _ in range(4)]
    assert seen == [PROMPT + tokens[:i] for i in range(4)]
    assert request.all_token_ids == PROMPT + tokens
