"""Mutants whose generate ends in the right state with the wrong output: finish_reason, token count, kept tokens."""

from __future__ import annotations

from ggufsm.reference.runtime.commands import Generate
from ggufsm.reference.runtime.request import Request
from ggufsm.reference.runtime.resident import Resident
from ggufsm.spec.names import FinishReason
from mutants.base import GenerateWithRequest, Mutant, lifecycle_with, runtime_with
from mutants.rules import both, cell, finish_reason

KIND = "outputs"
NEW_REQUEST_CANCELLED = dict(input_valid=True, sampling_valid=True, prompt_fits=True, model_intact=True, logits_finite=True,
                             cancelled=True)


class _GenerateIgnoringEos(Generate):
    def __init__(self, prompt, max_tokens, overrides, on_token, stop_at_eos) -> None:
        super().__init__(prompt, max_tokens, overrides, on_token, stop_at_eos=False)   # the bug


class IgnoresStopAtEos(Mutant):
    """generate never stops at an end-of-generation token, whatever stop_at_eos says: it runs on to
    max_tokens (finish_reason length) past the EOS."""

    kind, breaks = KIND, finish_reason(FinishReason.stop)
    runtime_class = runtime_with(generate_command=_GenerateIgnoringEos)


def _request_reporting(actual: FinishReason, reported: FinishReason) -> type[GenerateWithRequest]:
    """A generate whose request, having ended for `actual`, reports `reported`."""

    class _Misreporting(Request):
        def run(self, session, max_tokens, on_token, end_ids) -> None:
            super().run(session, max_tokens, on_token, end_ids)
            if self.finish_reason is actual:
                self.finish_reason = reported   # the bug

    return type("_GenerateMisreporting", (GenerateWithRequest,), {"request_class": _Misreporting})


class ReportsLengthWhenContextFull(Mutant):
    """A generate that stops because the context window is full reports finish_reason "length" instead of
    "context"."""

    kind, breaks = KIND, finish_reason(FinishReason.context)
    runtime_class = runtime_with(generate_command=_request_reporting(FinishReason.context, FinishReason.length))


class ReportsLengthAtEos(Mutant):
    """A generate that stops at an end-of-generation token reports finish_reason "length" instead of "stop"."""

    kind, breaks = KIND, finish_reason(FinishReason.stop)
    runtime_class = runtime_with(generate_command=_request_reporting(FinishReason.stop, FinishReason.length))


class _RequestForgettingOnCancel(Request):
    def run(self, session, max_tokens, on_token, end_ids) -> None:
        super().run(session, max_tokens, on_token, end_ids)
        if self.finish_reason is FinishReason.cancelled:   # the bug: rolled back to the prompt
            self.generated_token_ids, self.text_parts = [], []
            self.logits = session.prefill(self.prompt_token_ids, 0)
            self.n_past = len(self.prompt_token_ids)


class CancelLosesKeptTokens(Mutant):
    """A cancelled generate ends with Cancelled in ContinuationReady and its reply lists the tokens made, but
    the request was rolled back to its prompt: a continuation goes on from the prompt, not from them."""

    kind, breaks = KIND, cell("Ready", "generate", **NEW_REQUEST_CANCELLED)
    runtime_class = runtime_with(generate_command=type("_Generate", (GenerateWithRequest,),
                                                       {"request_class": _RequestForgettingOnCancel}))


class CancelledGenerateSucceeds(Mutant):
    """A cancelled generate stops after its current token but returns normally (finish_reason "cancelled")
    instead of failing with Cancelled."""

    kind, breaks = KIND, both(cell("Ready", "generate", **NEW_REQUEST_CANCELLED), finish_reason(FinishReason.cancelled))
    runtime_class = lifecycle_with(cancelled=lambda self, command: False)   # the bug: the guard never holds


class _GenerateOneTooMany(Generate):
    def run(self, resident: Resident) -> None:
        self.max_tokens += 1   # the bug: `while n <= max_tokens`
        super().run(resident)


class GeneratesOneTokenTooMany(Mutant):
    """generate(max_tokens=n) produces n + 1 tokens (finish_reason "length"); max_tokens=0 produces one."""

    kind, breaks = KIND, finish_reason(FinishReason.length)
    runtime_class = runtime_with(generate_command=_GenerateOneTooMany)


MUTANTS: tuple[type[Mutant], ...] = (
    IgnoresStopAtEos, ReportsLengthWhenContextFull, ReportsLengthAtEos, CancelLosesKeptTokens,
    CancelledGenerateSucceeds, GeneratesOneTokenTooMany,
)
