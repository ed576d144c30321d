"""Mutants that land in the right state but do the wrong thing there: a cell's effect broken.

Each state's resident data allows a union of what its branches may leave, so
most of these pass a check of the state and of the resident list: only the
branch's own effect tells.
"""

from __future__ import annotations

import os
from types import SimpleNamespace

import numpy as np

from ggufsm.reference.runtime import RuntimeConfig
from ggufsm.reference.runtime.commands import Generate, InitRuntime, InstallModel, Reset, SetSampling
from ggufsm.reference.runtime.request import Request
from ggufsm.reference.runtime.resident import Resident, release
from ggufsm.reference.sampling import Sampler, SamplingConfig
from ggufsm.spec.errors import ModelUnavailable
from ggufsm.spec.names import ErrorCode, ResidentDatum, State
from mutants.base import DIAGNOSTICS, GenerateWithRequest, Mutant, MutantLifecycle, lifecycle_with, runtime_with
from mutants.rules import FREE_RELEASES, REQUEST_CLEANUP, TRANSACTIONAL, both, cell

KIND = "effects"


# ─── reset ──


class _ResetKeepingLastError(Reset):
    def commit(self, resident: Resident) -> None:
        resident.request = None   # the bug: last_error is not cleared


class ResetKeepsLastError(Mutant):
    """reset() in RecoverableError with a model lands in Ready but keeps last_error.

    Ready allows a last_error, so the state and its resident list look right; only the branch's effect
    ("last_error ... cleared") tells."""

    kind, breaks = KIND, cell("RecoverableError", "reset", model_resident=True)
    runtime_class = runtime_with(reset_command=_ResetKeepingLastError)


class _RequestAfterStaleKv(Request):
    """A request whose prompt is evaluated after `stale` positions the KV cache still holds."""

    stale = 0

    def prefill(self, session) -> None:
        self.logits = session.prefill(self.prompt_token_ids, self.stale)
        self.n_past = self.stale + len(self.prompt_token_ids)


class _ResetKeepingKvPosition(Reset):
    def commit(self, resident: Resident) -> None:
        if resident.request is not None:   # the bug: the KV cache's fill is not reset with the request
            resident.stale_positions = resident.request.n_past  # type: ignore[attr-defined]
        super().commit(resident)


class _GenerateAfterStaleKv(GenerateWithRequest):
    request_class = _RequestAfterStaleKv

    def start(self, resident: Resident) -> None:
        stale = getattr(resident, "stale_positions", 0)
        resident.stale_positions = 0  # type: ignore[attr-defined]
        super().start(resident)
        assert self.request is not None and resident.session is not None
        if stale + len(self.prompt_ids) < resident.session.n_ctx:
            self.request.stale = stale


class ResetLeavesKvCacheFilled(Mutant):
    """reset() in ContinuationReady drops the request but not the KV cache's contents: the next generate's
    prompt is evaluated after the old request's positions, so its output differs from a fresh runtime's.

    The state, resident list and the reply's prompt_tokens are all right."""

    kind, breaks = KIND, cell("ContinuationReady", "reset")
    runtime_class = runtime_with(reset_command=_ResetKeepingKvPosition, generate_command=_GenerateAfterStaleKv)


# ─── load, replace, free ──

SCRATCH_BYTES = 1 << 20


class _ResidentWithLeftoverScratch(Resident):
    def __init__(self) -> None:
        super().__init__()
        self.leftover: list[np.ndarray] = []

    def present(self) -> set[ResidentDatum]:
        held = super().present()
        if self.leftover:   # reported honestly: the handle holds it
            held.add(ResidentDatum.scratch)
        return held

    def install(self, model, session) -> None:
        self.leftover.clear()   # a load that succeeds reuses it
        super().install(model, session)


class _LoadAllocatingScratchFirst(InstallModel):
    def run(self, resident: Resident) -> None:
        self.scratch = np.ones(SCRATCH_BYTES, np.uint8)   # allocated before the bytes are validated
        super().run(resident)

    def commit(self, resident: Resident) -> None:
        self.scratch = None
        super().commit(resident)

    def fail(self, resident: Resident) -> None:
        super().fail(resident)
        scratch = getattr(self, "scratch", None)   # None: refused before the load ran
        if resident.model is None and scratch is not None:   # the bug: kept, and free() never sees it
            resident.leftover.append(scratch)  # type: ignore[attr-defined]


class FreeLeavesScratchAfterFailedLoad(Mutant):
    """A failed load keeps the scratch it allocated before validating; free() releases only what an installed
    model holds, so the scratch is still resident (and listed) in Freed.

    RecoverableError allows scratch, so it shows only once free (or reset) moves to a state that does not."""

    kind, breaks = KIND, both(cell("RecoverableError", "free"), FREE_RELEASES)
    runtime_class = runtime_with(
        lifecycle_class=type("Lifecycle", (MutantLifecycle,), {"resident_class": _ResidentWithLeftoverScratch}),
        install_command=_LoadAllocatingScratchFirst)


class _HalfBuiltModel:
    """The model object a load allocates before the bytes are validated: its summary, no tokenizer, no weights."""

    def __init__(self, source) -> None:
        self.summary = {"source": str(source), "architecture": None}
        self.source = str(source)
        self.gguf = SimpleNamespace(file_size=os.path.getsize(source), path=str(source))
        self.tokenizer = None

    def close(self) -> None:
        pass


class _LoadKeepingHalfBuiltModel(InstallModel):
    def fail(self, resident: Resident) -> None:
        super().fail(resident)
        if resident.model is None and not isinstance(self.load.failure, ModelUnavailable):
            resident.model = _HalfBuiltModel(self.source)  # type: ignore[assignment]  # the bug: never cleared


class FailedLoadKeepsHalfBuiltModel(Mutant):
    """A load that fails on the file's contents (InvalidModel, UnsupportedModel) leaves the model object it
    allocated before validating installed, without tokenizer or weights.

    RecoverableError allows a model, so its resident list looks right; but a model is resident where the
    table installed nothing: a retried load_model is refused and a generate fails."""

    kind, breaks = KIND, both(cell("Initialized", "load_model", model_readable=True, model_well_formed=False),
                              TRANSACTIONAL)
    runtime_class = runtime_with(install_command=_LoadKeepingHalfBuiltModel)


class _ReplaceReleasingFirst(InstallModel):
    def start(self, resident: Resident) -> None:
        if resident.model is not None:   # the bug: the old model goes before the new bytes are validated
            model, session = resident.model, resident.session
            resident.model = resident.session = resident.request = None
            release(model, session)


class FailedReplaceDropsModel(Mutant):
    """replace_model releases the resident model before it validates the new bytes: a failed replace
    leaves no model at all."""

    kind, breaks = KIND, both(cell("Ready", "replace_model", model_readable=True, model_well_formed=False),
                              TRANSACTIONAL)
    runtime_class = runtime_with(install_command=_ReplaceReleasingFirst)


class _DoubleBufferedResident(Resident):
    """Keeps the model a replace displaced as a spare, for a quick roll-back."""

    def __init__(self) -> None:
        super().__init__()
        self.spare: tuple | None = None

    def install(self, model, session) -> None:
        older, self.spare = self.spare, ((self.model, self.session) if self.model is not None else None)
        self.model, self.session, self.request = model, session, None
        if older is not None:
            release(*older)

    def keep_only(self, allowed: frozenset[str]) -> None:
        if ResidentDatum.model not in allowed and self.spare is not None:
            release(*self.spare)
            self.spare = None
        super().keep_only(allowed)


class _ReplaceRollingBackToSpare(InstallModel):
    def fail(self, resident: Resident) -> None:
        super().fail(resident)
        spare = getattr(resident, "spare", None)
        if resident.model is not None and spare is not None:   # the bug: "rolls back" to the spare slot
            resident.spare = (resident.model, resident.session)  # type: ignore[attr-defined]
            resident.model, resident.session = spare


class FailedReplaceRevertsToOlderModel(Mutant):
    """A double-buffered runtime: after load(A), replace(B), a failed replace swaps the slots and leaves
    A installed instead of B.

    A model stays resident, and right after a single replace it is even the right one: only a path with
    a successful replace before the failed one shows it (by output or model identity)."""

    kind, breaks = KIND, both(cell("Ready", "replace_model", model_readable=False), TRANSACTIONAL)
    runtime_class = runtime_with(
        lifecycle_class=type("Lifecycle", (MutantLifecycle,), {"resident_class": _DoubleBufferedResident}),
        install_command=_ReplaceRollingBackToSpare)


class _ReplaceRebuildingSession(InstallModel):
    def fail(self, resident: Resident) -> None:
        super().fail(resident)
        if resident.model is not None and resident.session is not None:
            # the bug: the old model's session is rebuilt at the model's own context size, not the configured one
            weights = resident.model.weights
            resident.session.close()
            resident.session = weights.new_session(RuntimeConfig().context_for(weights.n_ctx_train))


class FailedReplaceResizesContext(Mutant):
    """A failed replace keeps the old model but rebuilds its KV cache at the model's default context size
    instead of the configured n_ctx.

    Greedy output on a short prompt is unchanged; a prompt that overflowed the configured context before
    the failed replace now fits."""

    kind, breaks = KIND, both(cell("Ready", "replace_model", model_readable=True, model_well_formed=True,
                                   model_supported=False), TRANSACTIONAL)
    runtime_class = runtime_with(install_command=_ReplaceRebuildingSession)


# ─── generate ──


class _GenerateAfterOpenRequest(GenerateWithRequest):
    request_class = _RequestAfterStaleKv

    def start(self, resident: Resident) -> None:
        previous = resident.request
        super().start(resident)
        assert self.request is not None and resident.session is not None
        if previous is not None and previous.n_past + len(self.prompt_ids) < resident.session.n_ctx:
            self.request.stale = previous.n_past   # the bug: the new prompt goes after the old request's tokens


class GenerateKeepsPriorTokens(Mutant):
    """A generate in ContinuationReady evaluates its prompt after the open request's tokens instead of
    clearing them (a KV cache that is only ever appended to).

    The reply's prompt_tokens and finish_reason are right; the tokens differ from the same generate in
    Ready."""

    kind, breaks = KIND, both(cell("ContinuationReady", "generate", input_valid=True, sampling_valid=True,
                                   prompt_fits=True, model_intact=True, logits_finite=True,
                                   cancelled=False), REQUEST_CLEANUP)
    runtime_class = runtime_with(generate_command=_GenerateAfterOpenRequest)


class _RequestCarryingCounters(Request):
    carried = 0

    def counters(self) -> dict:
        counts = super().counters()
        counts["generated_tokens"] += self.carried
        return counts


class _GenerateCarryingCounters(GenerateWithRequest):
    request_class = _RequestCarryingCounters

    def start(self, resident: Resident) -> None:
        previous = resident.request
        super().start(resident)
        assert self.request is not None
        if previous is not None:   # the bug: the request counters run on across requests
            self.request.carried = previous.counters()["generated_tokens"]  # type: ignore[attr-defined]


class GenerateKeepsRequestCounters(Mutant):
    """A generate in ContinuationReady starts a new request but its generated-token counter (diagnostics)
    carries on from the previous request's.

    Tokens and text are right: only the request counters in diagnostics tell, and the 1.0 protocol leaves
    diagnostics free-form."""

    kind, breaks = KIND, both(cell("ContinuationReady", "generate", input_valid=True, sampling_valid=True,
                                   prompt_fits=True, model_intact=True, logits_finite=True,
                                   cancelled=False), REQUEST_CLEANUP)
    observable = DIAGNOSTICS
    runtime_class = runtime_with(generate_command=_GenerateCarryingCounters)


class _ResidentWithPartialRequest(Resident):
    def __init__(self) -> None:
        super().__init__()
        self.partial: Request | None = None

    def present(self) -> set[ResidentDatum]:
        held = super().present()
        if self.partial is not None:
            held.add(ResidentDatum.request)
        return held

    def install(self, model, session) -> None:
        self.partial = None
        super().install(model, session)

    def keep_only(self, allowed: frozenset[str]) -> None:
        if ResidentDatum.model not in allowed:
            self.partial = None
        super().keep_only(allowed)


class _PrefetchingLifecycle(MutantLifecycle):
    resident_class = _ResidentWithPartialRequest

    def prompt_fits(self, command: Generate) -> bool:
        fits = super().prompt_fits(command)
        resident = self.resident
        if not fits:   # the bug: what fits is prefetched before the request is refused, and left there
            assert resident.model is not None and resident.session is not None
            partial = Request(command.prompt_ids[:resident.session.n_ctx], Sampler(resident.sampling),
                              resident.model.tokenizer.stream_decoder(), resident.timings)
            partial.prefill(resident.session)
            resident.partial = partial  # type: ignore[attr-defined]
        return fits

    def start(self, command) -> None:
        self.resident.partial = None  # type: ignore[attr-defined]
        super().start(command)


class ContextRejectionLeavesPartialState(Mutant):
    """A prompt that does not fit is refused with ContextOverflow, but only after the tokens that fit were
    prefilled; that partial request stays resident (and listed) until the next request or release."""

    kind, breaks = KIND, both(cell("Ready", "generate", input_valid=True, sampling_valid=True, prompt_fits=False),
                              REQUEST_CLEANUP)
    runtime_class = runtime_with(lifecycle_class=_PrefetchingLifecycle)


def _fail_dropping_request_on_refused_load(self, command) -> None:
    MutantLifecycle.fail(self, command)
    if command.error.code == ErrorCode.InvalidState and isinstance(command, InstallModel):
        self.resident.request = None   # the bug: load_model cleared the request before asking the state


class RefusedLoadDropsRequest(Mutant):
    """load_model in ContinuationReady is refused with InvalidState, as the table says, but the open request
    was already dropped: the state still says ContinuationReady and nothing can be continued."""

    kind, breaks = KIND, cell("ContinuationReady", "load_model")
    runtime_class = lifecycle_with(fail=_fail_dropping_request_on_refused_load)


class _InitForgettingOnError(InitRuntime):
    def fail(self, resident: Resident) -> None:
        if resident.config is not None:   # the bug: the old configuration was overwritten before validation
            resident.config = RuntimeConfig()


class InvalidConfigDropsPrevious(Mutant):
    """An invalid init_runtime in Initialized (or Freed) fails with InvalidInput as it should, but the previous
    configuration is gone: the defaults (the model's own context size) apply from then on."""

    kind, breaks = KIND, cell("Initialized", "init_runtime", config_valid=False)
    runtime_class = runtime_with(init_command=_InitForgettingOnError)


# ─── set_sampling ──


class _SamplingForNextRequestOnly(SetSampling):
    def commit(self, resident: Resident) -> None:
        assert self.sampling is not None and self.step is not None
        resident.sampling = self.sampling   # the bug: the open request keeps the sampler it started with
        if self.step.source == State.RecoverableError:
            resident.last_error = None


class SetSamplingIgnoredByOpenRequest(Mutant):
    """set_sampling in ContinuationReady is stored for the next request; generate_next_token on the open
    request still samples with the old settings."""

    kind, breaks = KIND, cell("ContinuationReady", "set_sampling", sampling_valid=True)
    runtime_class = runtime_with(sampling_command=_SamplingForNextRequestOnly)


class _SamplingKeepingLastError(SetSampling):
    def commit(self, resident: Resident) -> None:
        error = resident.last_error
        super().commit(resident)
        resident.last_error = error   # the bug


class RecoverableSetSamplingKeepsLastError(Mutant):
    """A valid set_sampling in RecoverableError leaves to Ready (or Initialized) as the table says, but
    last_error stays set (the reference's own deviation before this round)."""

    kind, breaks = KIND, cell("RecoverableError", "set_sampling", sampling_valid=True, model_resident=True)
    runtime_class = runtime_with(sampling_command=_SamplingKeepingLastError)


class _SamplingResetOnError(SetSampling):
    def fail(self, resident: Resident) -> None:
        resident.sampling = SamplingConfig()   # the bug: built from the defaults, then validated; kept on failure


class InvalidSamplingDropsPrevious(Mutant):
    """An invalid set_sampling fails with InvalidSampling, but the sampling configuration set before it is
    replaced by the defaults."""

    kind, breaks = KIND, cell("Ready", "set_sampling", sampling_valid=False)
    runtime_class = runtime_with(sampling_command=_SamplingResetOnError)


MUTANTS: tuple[type[Mutant], ...] = (
    ResetKeepsLastError, ResetLeavesKvCacheFilled, FreeLeavesScratchAfterFailedLoad, FailedLoadKeepsHalfBuiltModel,
    FailedReplaceDropsModel, FailedReplaceRevertsToOlderModel, FailedReplaceResizesContext, GenerateKeepsPriorTokens,
    GenerateKeepsRequestCounters, ContextRejectionLeavesPartialState, RefusedLoadDropsRequest,
    InvalidConfigDropsPrevious, SetSamplingIgnoredByOpenRequest, RecoverableSetSamplingKeepsLastError,
    InvalidSamplingDropsPrevious,
)
