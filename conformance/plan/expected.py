"""What the table says one call yields: the outcome a check holds a reply to.

An :class:`Expected` is built from the branch the call takes and what the
calls before it left (a :class:`Trace`): the state after, the named error (or
success), the branch's effects, and what they leave behind, exactly: the
error recorded as last_error, which of the suite's models is installed,
whether a request is open, and so the exact resident data (the state's
required data plus the model's, the request's and last_error where the
effects leave them). Where the recipe decides it, it also says how the call's
generate ends. Checks read only this value, never the table, so a case's
expectations are all in its plan (and in the suite's JSON).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from ggufsm.conformance.plan.recipes import with_natural_values
from ggufsm.spec import Branch, Outcome, Spec
from ggufsm.spec.names import (
    ConfigEffect,
    EffectField,
    ErrorCode,
    FinishReason,
    LastErrorEffect,
    ModelEffect,
    RequestEffect,
    ResidentDatum,
    State,
)


@dataclass(frozen=True)
class Trace:
    """What a runtime holds between calls, beyond its state: what the effects carry from call to call."""

    last_error: ErrorCode | None = None   # the code recorded
    model: str | None = None              # the SuiteInputs field of the installed model's file
    request: bool = False                 # a request is open
    n_ctx: int | None = None              # the context size the runtime was configured with (None: its default)

    @property
    def model_resident(self) -> bool:
        return self.model is not None


@dataclass(frozen=True)
class Expected:
    to: State                              # the state after
    error: ErrorCode | None                # the error code, or None for success
    model_resident: bool                   # a model is installed after the call
    required: frozenset[ResidentDatum]     # data the state after must hold
    optional: frozenset[ResidentDatum]     # data it may hold; anything else must be absent
    finish_reason: FinishReason | None = None   # how the call's generate ends, where the recipe decides it
    # What the effects leave (None where the call answers in a transient state, which decides no effects):
    resident: frozenset[ResidentDatum] | None = None   # exactly the data held after the call
    after: Trace | None = None
    effects: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))   # the branch's, every field

    def describe(self) -> str:
        ends = f" (finish_reason {self.finish_reason})" if self.finish_reason else ""
        return f"{self.error}{ends} then state {self.to}" if self.error else f"success{ends}, state {self.to}"

    def changes(self) -> dict[str, str]:
        return {name: value for name, value in self.effects.items() if value != LastErrorEffect.kept}


def model_data(spec: Spec) -> frozenset[ResidentDatum]:
    """The data that come and go with a model: held by every state that holds one, by none that cannot."""
    with_model = [entry.required for entry in spec.states.values() if ResidentDatum.model in entry.required]
    without = [entry.required | entry.optional for entry in spec.states.values()
               if ResidentDatum.model not in entry.required | entry.optional]
    common = frozenset.intersection(*map(frozenset, with_model))
    return frozenset(map(ResidentDatum, common - frozenset().union(*without)))


def resident_after(spec: Spec, model_resident_before: bool, to: str) -> bool:
    """Whether a model is installed after a transition into `to`: what that state requires or
    forbids, else what was there before (a failed operation keeps what was there)."""
    required, optional = spec.resident(to)
    if ResidentDatum.model in required:
        return True
    if ResidentDatum.model not in optional:
        return False
    return model_resident_before


def trace_after(spec: Spec, outcome: Outcome, before: Trace, installs: str | None, n_ctx: int | None = None) -> Trace:
    """What the outcome's effects leave, from what was there before (`installs`: the model a load
    gives; `n_ctx`: the context size an init_runtime gives, None for the default)."""
    required, optional = spec.resident(outcome.to)
    allowed = required | optional
    effects = outcome.effects
    last_error = {LastErrorEffect.set: ErrorCode(outcome.error) if outcome.error else None,
                  LastErrorEffect.cleared: None}.get(LastErrorEffect(effects[EffectField.last_error]), before.last_error)
    model = {ModelEffect.installed: installs, ModelEffect.released: None}.get(
        ModelEffect(effects[EffectField.model]), before.model)
    request = {RequestEffect.new: True, RequestEffect.extended: True, RequestEffect.cleared: False}.get(
        RequestEffect(effects[EffectField.request]), before.request)
    configured = n_ctx if effects[EffectField.config] == ConfigEffect.applied else before.n_ctx
    return Trace(last_error if ResidentDatum.last_error in allowed else None,
                 model if ResidentDatum.model in allowed else None,
                 request and ResidentDatum.request in allowed, configured)


def resident_of(spec: Spec, to: str, trace: Trace) -> frozenset[ResidentDatum]:
    """Exactly the data held in `to` with what the trace says is there."""
    required, _ = spec.resident(to)
    held = set(map(ResidentDatum, required))
    if trace.model is not None:
        held |= model_data(spec)
    if trace.request:
        held.add(ResidentDatum.request)
    if trace.last_error is not None:
        held.add(ResidentDatum.last_error)
    return frozenset(held)


def expected_outcome(spec: Spec, outcome: Outcome, before: Trace | bool, finish_reason: FinishReason | None = None,
                     installs: str | None = None, n_ctx: int | None = None) -> Expected:
    """The Expected of an outcome reached from `before` (a Trace; a bool says only whether a model
    is installed, for calls answered in a transient state, whose effects are not judged).
    `finish_reason` (how the recipe's generate ends) applies only where the call runs (the outcome
    passes through a transient state)."""
    required, optional = spec.resident(outcome.to)
    model_before = before.model_resident if isinstance(before, Trace) else before
    after = trace_after(spec, outcome, before, installs, n_ctx) if isinstance(before, Trace) else None
    return Expected(State(outcome.to), ErrorCode(outcome.error) if outcome.error is not None else None,
                    after.model_resident if after is not None else resident_after(spec, model_before, outcome.to),
                    frozenset(map(ResidentDatum, required)), frozenset(map(ResidentDatum, optional)),
                    finish_reason if outcome.via is not None else None,
                    resident_of(spec, outcome.to, after) if after is not None else None, after,
                    MappingProxyType(dict(outcome.effects)))


def expected_of(spec: Spec, branch: Branch, before: Trace | bool, finish_reason: FinishReason | None = None,
                installs: str | None = None, n_ctx: int | None = None) -> Expected:
    return expected_outcome(spec, branch.outcome, before, finish_reason, installs, n_ctx)


def natural_outcome(spec: Spec, state: str, op: str, guards: Mapping[str, bool] | None = None) -> Outcome:
    """The outcome the table gives `op` in `state` with `guards`, natural values for the rest."""
    return spec.outcome(state, op, with_natural_values(spec.guards_for(state, op), guards or {}))
