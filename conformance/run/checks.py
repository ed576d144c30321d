"""Judging replies against an Expected: the checks every kind of case shares.

A failed check raises :class:`CaseFailed` naming the rule (the table branch,
e.g. ``cells.Ready.generate.cases[2]``, or a behavioural rule) and what was
expected and observed. An operation the implementation lacks raises
:class:`Unsupported`: the case is "not supported", never a pass. The
expectations come from the plan (``plan.expected``); nothing here reads the
table.
"""

from __future__ import annotations

from typing import Any

from ggufsm.conformance.adapter import INTERNAL_ERROR, Adapter, Reply
from ggufsm.conformance.plan.expected import Expected
from ggufsm.spec.names import Operation, ResidentDatum


class CaseFailed(AssertionError):
    def __init__(self, rule: str, message: str):
        super().__init__(f"{rule}: {message}")
        self.rule = rule
        self.message = message


class Unsupported(Exception):
    """The implementation does not have an operation the case needs."""

    def __init__(self, op: str, why: str = ""):
        super().__init__(why or f"the implementation does not support {op}")
        self.op = op


class RaceLost(Exception):
    """A concurrent case could not interleave as intended (e.g. the generate ended before the cancel
    arrived); the runner retries it."""


def require_supported(adapter: Adapter, op: str) -> None:
    if op not in adapter.capabilities.operations:
        raise Unsupported(op)


def check_reply(reply: Reply, expected: Expected, rule: str, what: str) -> None:
    """The reply's outcome (ok or the named error), every state it reports, and how its generate
    ended match the expectation."""
    if reply.not_supported:
        raise Unsupported(what, f"{what}: {reply.error.message if reply.error else ''}")
    got = reply.code
    if reply.code == INTERNAL_ERROR:
        raise CaseFailed(rule, f"{what}: the implementation failed unexpectedly ({_message(reply)}); "
                               f"expected {expected.describe()}")
    if got != expected.error:
        observed = f"{got} ({_message(reply)})" if got else "success"
        raise CaseFailed(rule, f"{what}: expected {expected.describe()}, got {observed}"
                               + (f" in state {reply.state}" if reply.state else ""))
    state_after = reply.error.state_after if reply.error is not None else None
    if state_after not in (None, expected.to):
        raise CaseFailed(rule, f"{what}: {got} says state_after={state_after}, expected {expected.to}")
    if reply.state is not None and reply.state != expected.to:
        raise CaseFailed(rule, f"{what}: expected state {expected.to} after {expected.error or 'success'}, "
                               f"the implementation reports {reply.state}")
    check_finish_reason(reply, expected, rule, what)


def check_finish_reason(reply: Reply, expected: Expected, rule: str, what: str) -> None:
    """A generate's finish_reason, where the recipe decides it (an error's partial value may omit it)."""
    finish = reply.value.get("finish_reason") if isinstance(reply.value, dict) else None
    if expected.finish_reason is None or (finish is None and not reply.ok):
        return
    if finish != expected.finish_reason:
        raise CaseFailed(rule, f"{what}: the generate should end with finish_reason {expected.finish_reason}, "
                               f"it reports {finish!r}")


def _message(reply: Reply) -> str:
    return reply.error.message if reply.error is not None else ""


def check_resident(adapter: Adapter, expected: Expected, rule: str, what: str) -> None:
    """Resident data after the call (through diagnostics, when the implementation lists resident
    data): every required datum present, nothing outside required + optional, and a model exactly
    when one should be installed."""
    if not adapter.capabilities.diagnostics:
        return
    reply = adapter.call(Operation.diagnostics)
    if not reply.ok or not isinstance(reply.value, dict) or "resident" not in reply.value:
        raise CaseFailed("resident_data", f"{what}: diagnostics did not answer with a resident list: "
                                          f"{reply.describe()}")
    present = set(reply.value["resident"])
    missing = sorted(expected.required - present)
    forbidden = sorted(present - expected.required - expected.optional)
    problems = ([f"missing {', '.join(missing)}"] if missing else []) + \
               ([f"holds {', '.join(forbidden)}, which {expected.to} does not allow"] if forbidden else [])
    if not forbidden and (ResidentDatum.model in present) != expected.model_resident:
        problems.append("holds no model where the one installed before should still be" if expected.model_resident
                        else "holds a model where none should be installed")
    if problems:
        raise CaseFailed(f"{rule} + states.{expected.to}.resident", f"{what}: resident data in {expected.to}: "
                                                                    f"{'; '.join(problems)} (diagnostics lists "
                                                                    f"{sorted(present)})")


def check_last_error(adapter: Adapter, expected: Expected, rule: str, what: str) -> None:
    """The last_error query agrees with the expectation: the error just raised where the state
    requires one, none where the state does not allow one."""
    if Operation.last_error not in adapter.capabilities.operations:
        return
    reply = adapter.call(Operation.last_error)
    if not reply.ok:
        raise CaseFailed(rule, f"{what}: the last_error query failed: {reply.describe()}")
    recorded = reply.value.get("code") if isinstance(reply.value, dict) else None
    if ResidentDatum.last_error in expected.required and expected.error and recorded != expected.error:
        raise CaseFailed(f"{rule} + states.{expected.to}.resident",
                         f"{what}: {expected.to} requires last_error = {expected.error}, "
                         f"the query answers {reply.value!r}")
    allowed = expected.required | expected.optional
    if ResidentDatum.last_error not in allowed and reply.value is not None:
        raise CaseFailed(f"{rule} + states.{expected.to}.resident",
                         f"{what}: {expected.to} allows no last_error, the query answers {reply.value!r}")


def check_state_query(adapter: Adapter, expected_state: str, rule: str, what: str) -> None:
    if not adapter.capabilities.state or Operation.state not in adapter.capabilities.operations:
        return
    reply = adapter.call(Operation.state)
    if not reply.ok or reply.value != expected_state:
        raise CaseFailed(rule, f"{what}: expected state {expected_state}, the state query answers {reply.describe()} "
                               f"value={reply.value!r}")


def check_after(adapter: Adapter, expected: Expected, rule: str, what: str) -> None:
    """Everything observable about the state a call left."""
    check_state_query(adapter, expected.to, rule, what)
    check_resident(adapter, expected, rule, what)
    check_last_error(adapter, expected, rule, what)


def tokens_of(reply: Reply) -> list[Any]:
    """The token ids a generate's reply (or a cancelled one's partial value) carries."""
    return list((reply.value or {}).get("token_ids", [])) if isinstance(reply.value, dict) else []
