"""The open request: its prompt and generated tokens, its KV position, its sampler, and the token loop.

A request talks to the model's session through three calls only:
``session.prefill(tokens, start)`` and ``session.decode(token, pos)``, each
returning the logits of the last evaluated position, and ``session.n_ctx``.

A sampled token is emitted before its own decode step: the step that gives
the logits for the token after it runs when that token is asked for (the
next `next_token`), not before this one is handed out. The first token of a
generate then waits only for the prefill (a decode step less before it:
15-30 ms on a quiet machine), and the last token of a request is never
evaluated for logits nobody samples. Each position is still reserved when
its token is sampled (`n_past`), so the context guards see what they did.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from ggufsm.reference.runtime.config import is_int
from ggufsm.reference.sampling import Sampler
from ggufsm.spec.errors import InvalidInput
from ggufsm.spec.names import FinishReason


@dataclass
class TokenEvent:
    token_id: int
    text: str          # the text this token completes (may be "" while a UTF-8 sequence is incomplete)
    index: int         # position among the request's generated tokens


@dataclass
class Generation:
    prompt_token_ids: list[int]
    token_ids: list[int]
    text: str
    finish_reason: str             # a FinishReason: stop, length, context or cancelled
    timings: dict = field(default_factory=dict)


def prompt_token_ids(prompt: str | Sequence[int], max_tokens: int, tokenizer) -> list[int]:
    """The prompt's token ids, or InvalidInput naming what is malformed."""
    if not is_int(max_tokens) or max_tokens < 0:
        raise InvalidInput(f"max_tokens={max_tokens!r}: expected an integer >= 0")
    if isinstance(prompt, str):
        if not prompt:
            raise InvalidInput("the prompt is empty")
        ids = tokenizer.encode(prompt)
    elif isinstance(prompt, Sequence) and all(is_int(token) for token in prompt):
        ids = [int(token) for token in prompt]
        bad = [token for token in ids if not 0 <= token < tokenizer.vocab_size]
        if bad:
            raise InvalidInput(f"token id(s) {bad[:5]} outside the vocabulary [0, {tokenizer.vocab_size})")
    else:
        raise InvalidInput(f"prompt must be text or a sequence of token ids, not {type(prompt).__name__}")
    if not ids:
        raise InvalidInput("the prompt has no tokens" if not isinstance(prompt, str) else "the prompt encodes to no tokens")
    return ids


class Request:
    """One request, from its prompt to how it ended. The handle holds at most one."""

    def __init__(self, prompt_token_ids: list[int], sampler: Sampler, stream_decoder, timings: dict[str, float]):
        self.prompt_token_ids = prompt_token_ids
        self.sampler = sampler
        self.stream_decoder = stream_decoder
        self.generated_token_ids: list[int] = []
        self._token_ids = list(prompt_token_ids)  # the prompt's and the generated, appended as sampled
        self.text_parts: list[str] = []
        self.n_past = 0                     # positions taken: evaluated into the KV cache, or owed (`pending`)
        self.pending: int | None = None     # the last sampled token, not yet evaluated (at position n_past - 1)
        self.logits: np.ndarray | None = None  # (n_vocab,) float32 of the last evaluated position
        self.n_decoded = 0                  # decode steps run (the tok/s figures' count)
        self.finish_reason: FinishReason | None = None
        self.end_note = ""                  # why a cancelled request ended
        self.callback_error: Exception | None = None  # what the on_token callback raised, if it did
        self.prefill_seconds = 0.0
        self.decode_seconds = 0.0
        self._timings = timings             # the handle's timings, kept current for diagnostics()
        self._cancel_requested = threading.Event()

    @property
    def all_token_ids(self) -> list[int]:
        """The prompt's token ids, then the generated ones (the request's own list: read, never change it).
        Kept as the tokens come rather than joined per token: the join copied the whole request each token."""
        return self._token_ids

    def cancel(self) -> None:
        """Ask the token loop to stop after its current token (from any thread)."""
        self._cancel_requested.set()

    # ─── evaluating tokens ──

    def prefill(self, session) -> None:
        started = time.perf_counter()
        self.logits = session.prefill(self.prompt_token_ids, 0)
        self.n_past = len(self.prompt_token_ids)
        self.prefill_seconds = time.perf_counter() - started
        self._timings["prefill_s"] = self.prefill_seconds
        self._timings["prefill_tok_s"] = self.n_past / max(self.prefill_seconds, 1e-9)

    def next_token(self, session) -> TokenEvent:
        """Evaluate the token owed (the previous one), then sample the next from its logits. The new token
        is owed in turn: its position is taken now, its decode runs when the token after it is asked for."""
        assert self.logits is not None, "next_token before prefill"
        if self.pending is not None:
            self._decode_pending(session)
        token_id = self.sampler.sample(self.logits, self._token_ids)  # all_token_ids, without the property's frame
        self.pending = token_id
        self.n_past += 1
        self.generated_token_ids.append(token_id)
        self._token_ids.append(token_id)
        text = self.stream_decoder.push(token_id)
        self.text_parts.append(text)
        return TokenEvent(token_id, text, len(self.generated_token_ids) - 1)

    def _decode_pending(self, session) -> None:
        # On a failure (a changed file) the token stays owed and the logits are the last good ones, so a
        # retry decodes it again: what a failed decode step left before the token was owed.
        assert self.pending is not None
        started = time.perf_counter()
        self.logits = session.decode(self.pending, self.n_past - 1)
        self.decode_seconds += time.perf_counter() - started
        self.pending = None
        self.n_decoded += 1
        self._timings["decode_tok_s"] = self.n_decoded / max(self.decode_seconds, 1e-9)

    def run(self, session, max_tokens: int, on_token: Callable[[TokenEvent], None] | None, end_ids: set[int]) -> None:
        """Generate until max_tokens, the context's end, an end-of-generation token, or a cancel."""
        while self.finish_reason is None:
            if len(self.generated_token_ids) >= max_tokens:
                self.finish_reason = FinishReason.length
            elif self.n_past >= session.n_ctx:
                self.finish_reason = FinishReason.context
            elif self._cancel_requested.is_set():
                self._end_cancelled(f"cancelled after {len(self.generated_token_ids)} generated token(s)")
            else:
                event = self.next_token(session)
                if on_token is not None:
                    try:
                        on_token(event)
                    except Exception as error:  # the caller's callback failing ends its request, as a cancel does
                        self.callback_error = error
                        self._end_cancelled(f"the on_token callback raised {error!r}")
                        return
                if event.token_id in end_ids:
                    self.finish_reason = FinishReason.stop

    def _end_cancelled(self, note: str) -> None:
        self.finish_reason = FinishReason.cancelled
        self.end_note = note

    # ─── reporting ──

    def counters(self) -> dict:
        return {
            "prompt_tokens": len(self.prompt_token_ids),
            "generated_tokens": len(self.generated_token_ids),
            "finish_reason": self.finish_reason,
            "prefill_s": self.prefill_seconds,
            "decode_s": self.decode_seconds,
        }

    def generation(self) -> Generation:
        assert self.finish_reason is not None, "a request's generation is read once it has ended"
        text = "".join(self.text_parts) + self.stream_decoder.flush()
        return Generation(
            prompt_token_ids=list(self.prompt_token_ids),
            token_ids=list(self.generated_token_ids),
            text=text,
            finish_reason=self.finish_reason,
            timings={"prefill_s": self.prefill_seconds, "decode_s": self.decode_seconds,
                     "decode_tok_s": self.n_decoded / self.decode_seconds if self.decode_seconds else 0.0},
        )
