"""Running one planned case (a branch of a table cell) against an implementation.

Everything a case checks is in its plan (``plan.cases.CasePlan``, the same
data as a case of ``conformance/suite.json``): the path's steps and their
outcomes, the call and its outcome, and how calls overlap. This module only
makes the calls, arranges the overlap and holds the replies to the plan.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from ggufsm.conformance.adapter import Adapter, Reply
from ggufsm.conformance.plan.cases import CallWhileRunning, CancelWhileCallRuns, CasePlan
from ggufsm.conformance.run.case import CELL, Case
from ggufsm.conformance.run.checks import (
    CaseFailed,
    RaceLost,
    Unsupported,
    check_after,
    check_reply,
    require_supported,
    tokens_of,
)
from ggufsm.conformance.run.overlap import call_while_running, call_with_cancel_at_first_token, in_process
from ggufsm.spec.names import Operation


def table_cases(plans: Iterable[CasePlan]) -> list[Case]:
    """The planned cases as runnable Cases."""

    def runner_for(plan: CasePlan) -> Callable[[Adapter], list[str]]:
        return lambda adapter: run_plan(plan, adapter)

    return [Case(plan.id, CELL, plan.rule, [*plan.describe(), f"effect: {plan.effect}"], runner_for(plan),
                 cell=plan.cell, conditions=dict(plan.conditions), transitions=plan.transitions)
            for plan in plans]


def run_plan(plan: CasePlan, adapter: Adapter) -> list[str]:
    """Run one case on a fresh adapter; returns notes, raises CaseFailed, Unsupported or RaceLost."""
    for op in sorted(plan.operations):
        require_supported(adapter, op)
    for number, step in enumerate(plan.path, 1):
        reply = adapter.call(step.action.op, dict(step.action.args))
        check_reply(reply, step.expected, step.rule, f"reaching {plan.state}, step {number} {step.describe()}")
    if isinstance(plan.concurrency, CallWhileRunning):
        return _run_call_while_running(plan, plan.concurrency, adapter)
    if isinstance(plan.concurrency, CancelWhileCallRuns):
        _run_cancel_while_call_runs(plan, plan.concurrency, adapter)
        return []
    _run_call(plan, adapter)
    return []


def _run_call(plan: CasePlan, adapter: Adapter) -> None:
    call = plan.call
    reply = adapter.call(call.action.op, dict(call.action.args))
    check_reply(reply, call.expected, plan.rule, plan.cell)
    if plan.op == Operation.state and reply.ok and adapter.capabilities.state and reply.value != plan.state:
        raise CaseFailed(plan.rule, f"the state query answers {reply.value!r} in state {plan.state}")
    check_after(adapter, call.expected, plan.rule, f"after {plan.cell}")


def _run_cancel_while_call_runs(plan: CasePlan, concurrency: CancelWhileCallRuns, adapter: Adapter) -> None:
    call, what = plan.call, plan.cell
    reply, cancel_reply = call_with_cancel_at_first_token(adapter, call.action, concurrency.cancel.action)
    if reply.not_supported:
        raise Unsupported(call.action.op)
    if cancel_reply is None and reply.ok and tokens_of(reply):
        raise CaseFailed(plan.rule, f"{what}: cancel() did not answer while the generate ran (it must not wait)")
    if cancel_reply is not None:
        _check_cancel_answered(cancel_reply, concurrency.cancel.rule, what)
        if reply.ok and (cancel_reply.value or {}).get("was_running") is False:
            raise RaceLost("the generate ended before the cancel arrived")
    if reply.code == call.expected.error:
        _check_kept_tokens(reply, call.action.args["max_tokens"], plan.rule, what)
    check_reply(reply, call.expected, plan.rule, what)
    check_after(adapter, call.expected, plan.rule, f"after {what}")


def _check_cancel_answered(cancel_reply: Reply, rule: str, what: str) -> None:
    if cancel_reply.not_supported:
        raise Unsupported(Operation.cancel)
    if not cancel_reply.ok:
        raise CaseFailed(rule, f"{what}: cancel() sent while the generate ran should answer, "
                               f"got {cancel_reply.describe()}")


def _check_kept_tokens(reply: Reply, max_tokens: int, rule: str, what: str) -> None:
    """A cancelled generate keeps the tokens made before the cancel (when it sends them: optional)."""
    if not isinstance(reply.value, dict) or "token_ids" not in reply.value:
        return
    kept = tokens_of(reply)
    if not 1 <= len(kept) < max_tokens:
        raise CaseFailed(rule, f"{what}: a cancelled generate keeps the tokens made before the cancel; "
                               f"it reports {len(kept)} of max_tokens={max_tokens}")


def _run_call_while_running(plan: CasePlan, concurrency: CallWhileRunning, adapter: Adapter) -> list[str]:
    """Start the running operation; make the case's call while it runs; check both."""
    running, call = concurrency.running, plan.call
    what = f"{plan.cell} (made while {running.action.op} runs)"
    overlapped = call_while_running(adapter, running.action, call.action, concurrency.send_call_at, plan.state,
                                    plan.rule)
    if overlapped.call.not_supported:
        raise Unsupported(plan.op)
    running_reply = overlapped.running
    if running.expected.error is not None:
        # The call interrupts the running operation (a cancel): unless it arrived too late.
        if running_reply.ok and (overlapped.call.value or {}).get("was_running") is False:
            raise RaceLost(f"{running.action.op} ended before {plan.op} arrived")
    elif running_reply.state == call.expected.to:
        # The state in a reply is read once the operation has returned; by then the command that
        # waited for it may already have applied. Its own reply and the state query judge that.
        running_reply = Reply(running_reply.ok, running_reply.value, running_reply.error, None)
    check_reply(running_reply, running.expected, running.rule, f"{running.action.op} (while {plan.op} was made)")
    if running.action.op == Operation.generate and running.expected.error is None:
        produced = len(tokens_of(running_reply))
        if produced != running.action.args["max_tokens"]:
            raise CaseFailed(plan.rule, f"{what}: the running generate was disturbed: {produced} of "
                                        f"{running.action.args['max_tokens']} tokens")
    if not concurrency.call_waits:
        _check_answer_in_transient(plan, overlapped.call, running.expected.to, what)
        return overlapped.notes
    # Only a generate holds its thread inside on_token, so only there is "answered meanwhile" exact.
    if overlapped.answered_while_running and running.action.op == Operation.generate and in_process(adapter):
        raise CaseFailed(plan.rule, f"{what}: answered while {running.action.op} was still running; it must wait")
    check_reply(overlapped.call, call.expected, plan.rule, what)
    check_after(adapter, call.expected, plan.rule, f"after {what}")
    return overlapped.notes


def _check_answer_in_transient(plan: CasePlan, reply: Reply, running_ends_in: str, what: str) -> None:
    """Queries and cancel answer at once, in the transient state or (if it already ended) the one after."""
    if not reply.ok:
        raise CaseFailed(plan.rule, f"{what}: expected an answer, got {reply.describe()}")
    if plan.op == Operation.state and reply.value not in (plan.state, running_ends_in):
        raise CaseFailed(plan.rule, f"{what}: the state query answers {reply.value!r}, expected "
                                    f"{plan.state} (or {running_ends_in} once it ended)")
