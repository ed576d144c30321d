"""Mutants whose outputs are each plausible, but are not the ones the same inputs must give:
a continuation that is not the longer generate, seeded runs that do not repeat, a seed that is not the handle's own."""

from __future__ import annotations

import numpy as np

from ggufsm.reference.runtime.commands import Generate, GenerateNextToken
from ggufsm.reference.runtime.resident import Resident
from mutants.base import HANDLES, Mutant, runtime_with
from mutants.rules import DETERMINISM, SEPARATE_HANDLES, both, cell

KIND = "determinism"


class _NextTokenReseeding(GenerateNextToken):
    def start(self, resident: Resident) -> None:
        super().start(resident)
        assert resident.request is not None
        sampler = resident.request.sampler
        sampler._generator = np.random.default_rng(sampler.config.seed)   # the bug: a fresh generator per call


class ContinuationRestartsSeededDraws(Mutant):
    """Each generate_next_token draws from a generator freshly seeded with the request's seed, instead of
    going on from the generate's draws: a seeded continuation is not the longer seeded generate (greedy
    ones are)."""

    kind, breaks = KIND, both(cell("ContinuationReady", "generate_next_token", context_left=True, model_intact=True,
                                           logits_finite=True), DETERMINISM)
    runtime_class = runtime_with(next_token_command=_NextTokenReseeding)


class _NextTokenNotAdvancing(GenerateNextToken):
    def run(self, resident: Resident) -> None:
        super().run(resident)
        assert resident.request is not None
        resident.request.n_past -= 1   # the bug: the next token is written over this one's KV position


class ContinuationOverwritesLastToken(Mutant):
    """generate_next_token does not advance the KV position: each continued token's key/value is overwritten
    by the next, so from the second continued token on the output drifts, and the context never fills."""

    kind, breaks = KIND, both(cell("ContinuationReady", "generate_next_token", context_left=True, model_intact=True,
                                           logits_finite=True), DETERMINISM)
    runtime_class = runtime_with(next_token_command=_NextTokenNotAdvancing)


class _GenerateWithHandleRng(Generate):
    def start(self, resident: Resident) -> None:
        super().start(resident)
        assert self.request is not None
        seed = self.request.sampler.config.seed
        if seed is not None:   # the bug: one generator per handle and seed, going on across requests
            if getattr(resident, "rng_seed", None) != seed:
                resident.rng_seed, resident.rng = seed, np.random.default_rng(seed)  # type: ignore[attr-defined]
            self.request.sampler._generator = resident.rng  # type: ignore[attr-defined]


class SeededRunsDoNotRepeat(Mutant):
    """The seeded generator belongs to the handle, not the request: the first seeded generate is right,
    the same generate again on the same handle (or after reset) goes on drawing and differs."""

    kind, breaks = KIND, DETERMINISM
    runtime_class = runtime_with(generate_command=_GenerateWithHandleRng)


class _GenerateIgnoringSeed(Generate):
    def start(self, resident: Resident) -> None:
        super().start(resident)
        assert self.request is not None
        self.request.sampler._generator = np.random.default_rng()   # the bug: the seed never reaches the generator


class SeedIgnored(Mutant):
    """The seed is accepted and reported but never used: every request draws from fresh entropy."""

    kind, breaks = KIND, DETERMINISM
    runtime_class = runtime_with(generate_command=_GenerateIgnoringSeed)


_PROCESS_RNG: dict[str, np.random.Generator] = {}


class _GenerateWithProcessRng(Generate):
    def start(self, resident: Resident) -> None:
        super().start(resident)
        assert self.request is not None
        seed = self.request.sampler.config.seed
        if seed is not None or "rng" not in _PROCESS_RNG:   # the bug: one generator for the whole process
            _PROCESS_RNG["rng"] = np.random.default_rng(seed)
        self.request.sampler._generator = _PROCESS_RNG["rng"]


class SharedRngAcrossHandles(Mutant):
    """One random generator for the whole process, reseeded by each seeded request: one handle alone
    repeats its seeded runs, but two handles sampling at once draw from each other's sequence."""

    kind, breaks = KIND, both(DETERMINISM, SEPARATE_HANDLES)
    observable = HANDLES
    runtime_class = runtime_with(generate_command=_GenerateWithProcessRng)


MUTANTS: tuple[type[Mutant], ...] = (
    ContinuationRestartsSeededDraws, ContinuationOverwritesLastToken, SeededRunsDoNotRepeat, SeedIgnored,
    SharedRngAcrossHandles,
)
