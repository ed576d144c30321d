"""Judging replies against the table: the checks every kind of case shares.

A failed check raises :class:`CaseFailed` naming the rule (the table branch,
e.g. ``cells.Ready.generate.cases[2]``, or a behavioural rule) and what was
expected and observed. An operation the implementation lacks raises
:class:`Unsupported`: the case is "not supported", never a pass.
"""

from __future__ import annotations

from dataclasses import dataclass

from ggufsm.conformance.adapter import INTERNAL_ERROR, Adapter, Reply


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


@dataclass(frozen=True)
class Expected:
    to: str                 # the state after
    error: str | None       # the error code, or None for success

    def describe(self) -> str:
        return f"{self.error} then state {self.to}" if self.error else f"success, state {self.to}"


def require_supported(adapter: Adapter, op: str) -> None:
    if op not in adapter.capabilities.operations:
        raise Unsupported(op)


def check_reply(reply: Reply, expected: Expected, rule: str, what: str) -> None:
    """The reply's outcome (ok or the named error) and every state it reports match the table."""
    if reply.not_supported:
        raise Unsupported(what, f"{what}: {reply.error.message}")
    got = reply.code
    if reply.code == INTERNAL_ERROR:
        raise CaseFailed(rule, f"{what}: the implementation failed unexpectedly ({reply.error.message}); "
                               f"expected {expected.describe()}")
    if got != expected.error:
        observed = f"{got} ({reply.error.message})" if got else "success"
        raise CaseFailed(rule, f"{what}: expected {expected.describe()}, got {observed}"
                               + (f" in state {reply.state}" if reply.state else ""))
    if reply.error is not None and reply.error.state_after not in (None, expected.to):
        raise CaseFailed(rule, f"{what}: {got} says state_after={reply.error.state_after}, expected {expected.to}")
    if reply.state is not None and reply.state != expected.to:
        raise CaseFailed(rule, f"{what}: expected state {expected.to} after {expected.error or 'success'}, "
                               f"the implementation reports {reply.state}")


def check_resident(adapter: Adapter, spec, state: str, rule: str, what: str) -> None:
    """Resident data in `state`: every required datum present, nothing outside required+optional
    (through diagnostics, when the implementation lists resident data)."""
    if not adapter.capabilities.diagnostics:
        return
    reply = adapter.call("diagnostics")
    if not reply.ok or not isinstance(reply.value, dict) or "resident" not in reply.value:
        raise CaseFailed("resident_data", f"{what}: diagnostics did not answer with a resident list: {reply.describe()}")
    present = set(reply.value["resident"])
    required, optional = spec.resident(state)
    missing = sorted(set(required) - present)
    forbidden = sorted(present - set(required) - set(optional))
    if missing or forbidden:
        problems = ([f"missing {', '.join(missing)}"] if missing else []) + \
                   ([f"holds {', '.join(forbidden)}, which {state} does not allow"] if forbidden else [])
        raise CaseFailed(f"{rule} + states.{state}.resident", f"{what}: resident data in {state}: {'; '.join(problems)} "
                                                              f"(diagnostics lists {sorted(present)})")


def check_last_error(adapter: Adapter, spec, expected: Expected, rule: str, what: str) -> None:
    """The last_error query agrees with the table: the error just raised where the state requires one,
    none where the state does not allow one."""
    if "last_error" not in adapter.capabilities.operations:
        return
    required, optional = spec.resident(expected.to)
    reply = adapter.call("last_error")
    if not reply.ok:
        raise CaseFailed(rule, f"{what}: the last_error query failed: {reply.describe()}")
    recorded = reply.value.get("code") if isinstance(reply.value, dict) else None
    if "last_error" in required and expected.error and recorded != expected.error:
        raise CaseFailed(f"{rule} + states.{expected.to}.resident",
                         f"{what}: {expected.to} requires last_error = {expected.error}, the query answers {reply.value!r}")
    if "last_error" not in required and "last_error" not in optional and reply.value is not None:
        raise CaseFailed(f"{rule} + states.{expected.to}.resident",
                         f"{what}: {expected.to} allows no last_error, the query answers {reply.value!r}")


def check_state_query(adapter: Adapter, expected_state: str, rule: str, what: str) -> None:
    if not adapter.capabilities.state or "state" not in adapter.capabilities.operations:
        return
    reply = adapter.call("state")
    if not reply.ok or reply.value != expected_state:
        raise CaseFailed(rule, f"{what}: expected state {expected_state}, the state query answers {reply.describe()} "
                               f"value={reply.value!r}")


def check_after(adapter: Adapter, spec, expected: Expected, rule: str, what: str) -> None:
    """Everything observable about the state an operation left."""
    check_state_query(adapter, expected.to, rule, what)
    check_resident(adapter, spec, expected.to, rule, what)
    check_last_error(adapter, spec, expected, rule, what)
