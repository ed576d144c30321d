"""Mutants that check a guard's values with a wrong edge, or not at all.

The ranges are the reference's (ggufsm.reference.sampling, runtime.config,
runtime.request); each mutant moves one edge of one value, or drops its check.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, replace

from ggufsm.reference.runtime.config import is_int
from ggufsm.reference.runtime.lifecycle import Lifecycle
from ggufsm.reference.sampling import SamplingConfig
from ggufsm.spec.errors import InvalidInput
from mutants.base import Mutant, MutantRuntime, lifecycle_with
from mutants.rules import Rule, both, guard

KIND = "boundaries"


def _is_real(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _sampling_checked_as(field: str, valid: Callable[[object], bool]) -> type[MutantRuntime]:
    """A runtime whose sampling_valid guard checks `field` with `valid` instead of the reference's range."""

    class _SamplingConfig(SamplingConfig):
        def _checks(self):
            for name, value, ok, expected in super()._checks():
                yield name, value, valid(value) if name == field else ok, expected

    def sampling_valid(self, command) -> bool:
        candidate = command.candidate(self.resident.sampling)
        command.sampling = _SamplingConfig(**asdict(candidate)).validated()
        return True

    return lifecycle_with(sampling_valid=sampling_valid)


def _sampling_rule(field: str, range_: str) -> Rule:
    return both(guard("sampling_valid"), Rule(f"sampling.{field}", f"{field} is {range_}"))


class NeverChecksTopP(Mutant):
    """top_p is never checked: 0, negative and above-1 values are accepted (and sample as if top_p were off)."""

    kind, breaks = KIND, _sampling_rule("top_p", "a number in (0, 1]")
    runtime_class = _sampling_checked_as("top_p", lambda value: True)


class AcceptsTopPZero(Mutant):
    """top_p's lower edge is closed: top_p=0 is accepted (the range is (0, 1])."""

    kind, breaks = KIND, _sampling_rule("top_p", "a number in (0, 1]")
    runtime_class = _sampling_checked_as("top_p", lambda value: _is_real(value) and 0 <= value <= 1)


class AcceptsMinPAboveOne(Mutant):
    """min_p has no upper edge: 1.5 is accepted (the range is [0, 1])."""

    kind, breaks = KIND, _sampling_rule("min_p", "a number in [0, 1]")
    runtime_class = _sampling_checked_as("min_p", lambda value: _is_real(value) and value >= 0)


class RefusesTemperatureZero(Mutant):
    """temperature's lower edge is open: temperature=0 (greedy) is refused with InvalidSampling."""

    kind, breaks = KIND, _sampling_rule("temperature", "a finite number in [0, 100] (0 = greedy)")
    runtime_class = _sampling_checked_as("temperature", lambda value: _is_real(value) and 0 < value <= 100)


class AcceptsNegativeTopK(Mutant):
    """top_k is not checked for sign: -1 is accepted (and acts as 0, "off")."""

    kind, breaks = KIND, _sampling_rule("top_k", "an integer >= 0 (0 = off)")
    runtime_class = _sampling_checked_as("top_k", lambda value: is_int(value))


# ─── generate's arguments ──


def _input_valid_then(adjust: Callable) -> type[MutantRuntime]:
    """A runtime whose input_valid guard first lets `adjust(lifecycle, command)` rewrite the arguments (or
    decide alone, returning a bool)."""

    def input_valid(self, command) -> bool:
        decided = adjust(self, command)
        return decided if isinstance(decided, bool) else Lifecycle.input_valid(self, command)

    return lifecycle_with(input_valid=input_valid)


def _refuse_zero_tokens(lifecycle, command) -> None:
    if command.max_tokens == 0:
        raise InvalidInput("max_tokens=0: expected at least one token")   # the bug


class RefusesMaxTokensZero(Mutant):
    """generate(max_tokens=0) is refused with InvalidInput (max_tokens >= 0 is valid: it evaluates the prompt
    and generates nothing)."""

    kind, breaks = KIND, guard("input_valid")
    runtime_class = _input_valid_then(_refuse_zero_tokens)


def _empty_prompt_as_bos(lifecycle, command) -> bool | None:
    if command.prompt != "":
        return None
    tokenizer = lifecycle.resident.model.tokenizer
    command.prompt_ids = [tokenizer.bos_id if tokenizer.bos_id is not None else 0]   # the bug
    return True


class AcceptsEmptyPrompt(Mutant):
    """An empty prompt is accepted (generation starts from the BOS token) instead of InvalidInput."""

    kind, breaks = KIND, both(guard("input_valid"), Rule("errors.InvalidInput", "empty prompt"))
    runtime_class = _input_valid_then(_empty_prompt_as_bos)


def _wrap_token_ids(lifecycle, command) -> None:
    if isinstance(command.prompt, list):
        vocab = lifecycle.resident.model.tokenizer.vocab_size
        command.prompt = [token % vocab if is_int(token) and token >= vocab else token   # the bug
                          for token in command.prompt]


class AcceptsOutOfVocabularyIds(Mutant):
    """Token ids at or above the vocabulary size are accepted (wrapped modulo the vocabulary)."""

    kind, breaks = KIND, guard("input_valid")
    runtime_class = _input_valid_then(_wrap_token_ids)


def _prompt_fits_with(extra: int) -> type[MutantRuntime]:
    def prompt_fits(self, command) -> bool:
        n_prompt, n_ctx = len(command.prompt_ids), self.resident.session.n_ctx
        return command.holds(n_prompt + extra <= n_ctx, f"the prompt has {n_prompt} tokens; the context {n_ctx}")

    return lifecycle_with(prompt_fits=prompt_fits)


class PromptFillingContextAccepted(Mutant):
    """A prompt of exactly n_ctx tokens is accepted (it leaves no room for a token: the generate ends at once
    with finish_reason "context")."""

    kind, breaks = KIND, guard("prompt_fits")
    runtime_class = _prompt_fits_with(0)


class PromptOneShortOfContextRefused(Mutant):
    """A prompt of n_ctx - 1 tokens, which leaves room for exactly one token, is refused with ContextOverflow."""

    kind, breaks = KIND, guard("prompt_fits")
    runtime_class = _prompt_fits_with(2)


def _context_left_one_early(self, command) -> bool:
    request, n_ctx = self.resident.request, self.resident.session.n_ctx
    n_past = request.n_past if request is not None else 0
    return command.holds(request is not None and n_past < n_ctx - 1, f"the context is full: {n_past} of {n_ctx}")


class ContinuationOverflowsOneEarly(Mutant):
    """generate_next_token refuses with ContextOverflow when one position is still free."""

    kind, breaks = KIND, guard("context_left")
    runtime_class = lifecycle_with(context_left=_context_left_one_early)


# ─── init_runtime's configuration ──


def _config_valid_after(adjust: Callable) -> type[MutantRuntime]:
    def config_valid(self, command) -> bool:
        command.config = adjust(command.config)
        return Lifecycle.config_valid(self, command)

    return lifecycle_with(config_valid=config_valid)


def _clamp_threads(config):
    if is_int(config.n_threads) and not 0 <= config.n_threads <= 1024:
        return replace(config, n_threads=1)   # the bug: out of range falls back to one thread
    return config


class AcceptsNThreadsOutOfRange(Mutant):
    """n_threads out of range (negative, or above 1024) is accepted and quietly runs on one thread."""

    kind, breaks = KIND, both(guard("config_valid"), Rule("init_runtime.n_threads", "an integer in [0, 1024]"))
    runtime_class = _config_valid_after(_clamp_threads)


def _negative_context_as_default(config):
    if is_int(config.n_ctx) and config.n_ctx < 0:
        return replace(config, n_ctx=None)   # the bug: any n_ctx <= 0 means "the model's own"
    return config


class AcceptsNegativeNCtx(Mutant):
    """A negative n_ctx is accepted as "the model's default context" (0 may mean that; a negative size never)."""

    kind, breaks = KIND, both(guard("config_valid"), Rule("init_runtime.n_ctx", "a positive context size"))
    runtime_class = _config_valid_after(_negative_context_as_default)


MUTANTS: tuple[type[Mutant], ...] = (
    NeverChecksTopP, AcceptsTopPZero, AcceptsMinPAboveOne, RefusesTemperatureZero, AcceptsNegativeTopK,
    RefusesMaxTokensZero, AcceptsEmptyPrompt, AcceptsOutOfVocabularyIds, PromptFillingContextAccepted,
    PromptOneShortOfContextRefused, ContinuationOverflowsOneEarly, AcceptsNThreadsOutOfRange, AcceptsNegativeNCtx,
)
