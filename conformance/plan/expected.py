"""What the table says one call yields: the outcome a check holds a reply to.

An :class:`Expected` is built from the branch the call takes: the state
after, the named error (or success), whether a model is installed after it,
the resident data the state after requires and allows, and, where the recipe
decides it, how the call's generate ends. Checks read only this value, never
the table, so a case's expectations are all in its plan (and in the suite's
JSON).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from ggufsm.conformance.plan.recipes import with_natural_values
from ggufsm.spec import Branch, Outcome, Spec
from ggufsm.spec.names import ErrorCode, FinishReason, ResidentDatum, State


@dataclass(frozen=True)
class Expected:
    to: State                              # the state after
    error: ErrorCode | None                # the error code, or None for success
    model_resident: bool                   # a model is installed after the call
    required: frozenset[ResidentDatum]     # data the state after must hold
    optional: frozenset[ResidentDatum]     # data it may hold; anything else must be absent
    finish_reason: FinishReason | None = None   # how the call's generate ends, where the recipe decides it

    def describe(self) -> str:
        ends = f" (finish_reason {self.finish_reason})" if self.finish_reason else ""
        return f"{self.error}{ends} then state {self.to}" if self.error else f"success{ends}, state {self.to}"


def resident_after(spec: Spec, model_resident_before: bool, to: str) -> bool:
    """Whether a model is installed after a transition into `to`: what that state requires or
    forbids, else what was there before (a failed operation keeps what was there)."""
    required, optional = spec.resident(to)
    if ResidentDatum.model in required:
        return True
    if ResidentDatum.model not in optional:
        return False
    return model_resident_before


def expected_outcome(spec: Spec, outcome: Outcome, model_resident_before: bool,
                     finish_reason: FinishReason | None = None) -> Expected:
    """The Expected of an outcome reached with or without a model installed. `finish_reason`
    (how the recipe's generate ends) applies only where the call runs (the outcome passes
    through a transient state)."""
    required, optional = spec.resident(outcome.to)
    return Expected(State(outcome.to), ErrorCode(outcome.error) if outcome.error is not None else None,
                    resident_after(spec, model_resident_before, outcome.to),
                    frozenset(map(ResidentDatum, required)), frozenset(map(ResidentDatum, optional)),
                    finish_reason if outcome.via is not None else None)


def expected_of(spec: Spec, branch: Branch, model_resident_before: bool,
                finish_reason: FinishReason | None = None) -> Expected:
    return expected_outcome(spec, branch.outcome, model_resident_before, finish_reason)


def natural_outcome(spec: Spec, state: str, op: str, guards: Mapping[str, bool] | None = None) -> Outcome:
    """The outcome the table gives `op` in `state` with `guards`, natural values for the rest."""
    return spec.outcome(state, op, with_natural_values(spec.guards_for(state, op), guards or {}))
