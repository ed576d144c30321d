"""Running one planned case (a branch of a table cell) against an implementation.

Everything a case checks is in its plan (``plan.cases.CasePlan``, the same
data as a case of ``conformance/suite.json``): the path's steps and their
outcomes, the call and its outcome with the branch's effects, how calls
overlap, and the probes that follow. This module only makes the calls,
arranges the overlap and holds the replies to the plan.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from ggufsm.conformance.adapter import Adapter, Reply
from ggufsm.conformance.plan.cases import CallWhileRunning, CancelWhileCallRuns, CasePlan
from ggufsm.conformance.plan.recipes import SuiteInputs
from ggufsm.conformance.run.case import CELL, Case, Opener
from ggufsm.conformance.run.checks import (
    CallContext,
    CaseFailed,
    Observed,
    Unsupported,
    check_after,
    check_reply,
    observe,
    require_supported,
    tokens_of,
)
from ggufsm.conformance.run.file_changes import PrivateCopy, private_copy
from ggufsm.conformance.run.overlap import call_while_running, call_with_cancel_at_first_token
from ggufsm.conformance.run.probes import RequestTracker, run_probe
from ggufsm.spec.names import ErrorCode, Operation

Identities = dict[str, tuple[str, str]]
MODEL_INPUTS = ("model", "alt_model")


def file_identities(inputs: SuiteInputs) -> Identities:
    """(file name, sha256) of each model file a load installs, as structured diagnostics name them."""
    identities: Identities = {}
    for name in MODEL_INPUTS:
        path = Path(getattr(inputs, name))
        if path.is_file():
            identities[name] = file_identity(path)
    return identities


def file_identity(path: Path) -> tuple[str, str]:
    with path.open("rb") as file:
        return path.name, hashlib.file_digest(file, "sha256").hexdigest()


def table_cases(plans: Iterable[CasePlan], inputs: SuiteInputs) -> list[Case]:
    """The planned cases as runnable Cases."""
    identities = file_identities(inputs)

    def runner_for(plan: CasePlan) -> Callable[[Adapter], list[str]]:
        if plan.file_change is None:
            return lambda adapter: run_plan(plan, adapter, inputs, identities)

        def with_other_handles(opener: Adapter) -> list[str]:
            # A file change is followed by a look at another runtime: the case opens its own (fresh_adapter=False).
            assert isinstance(opener, Opener)
            return run_plan(plan, opener.open(), inputs, identities, open_handle=opener.open_handle)
        return with_other_handles

    return [Case(plan.id, CELL, plan.rule, [*plan.describe(), f"effect: {plan.effect}"], runner_for(plan),
                 cell=plan.cell, conditions=dict(plan.conditions), transitions=plan.transitions,
                 fresh_adapter=plan.file_change is None, kit_actions=kit_actions(plan))
            for plan in plans]


def kit_actions(plan: CasePlan) -> list[str]:
    actions = [f"every <model> is <{plan.runs_on}>"] if plan.runs_on is not None else []
    if plan.file_change is not None:
        actions.append(f"{plan.file_change.describe()}, after the path and before the case's call")
    return actions


class CaseRun:
    """One case on one adapter: what its calls left (the open request, the last observation)."""

    def __init__(self, plan: CasePlan, adapter: Adapter, inputs: SuiteInputs, identities: Identities,
                 copy: PrivateCopy | None = None):
        self.plan, self.adapter, self.inputs, self.identities = plan, adapter, inputs, identities
        self.copy = copy   # the private model file of a file-change case
        self.tracker = RequestTracker()
        self.notes: list[str] = []

    def args(self, args: Mapping[str, Any]) -> dict[str, Any]:
        """A call's arguments as sent: a case that runs on another input names its file where the plan names
        the model; a file-change case names its private copy where the plan names the file."""
        if self.plan.runs_on is not None:
            model, used = self.inputs.model, getattr(self.inputs, self.plan.runs_on)
            args = {key: used if value == model else value for key, value in args.items()}
        return self.copy.args(args) if self.copy is not None else dict(args)

    def context(self, args: Mapping[str, Any], reply: Reply | None, before: Observed | None,
                generated: list[int] | None = None) -> CallContext:
        return CallContext(dict(args), reply, before, self.identities, generated)


def run_plan(plan: CasePlan, adapter: Adapter, inputs: SuiteInputs, identities: Identities | None = None,
             open_handle: Callable[[], Adapter] | None = None) -> list[str]:
    """Run one case on a fresh adapter; returns notes, raises CaseFailed or Unsupported. `open_handle`:
    another runtime beside it, for the probes that look at one."""
    for op in sorted(plan.operations):
        require_supported(adapter, op)
    identities = identities if identities is not None else file_identities(inputs)
    if plan.runs_on is not None:   # diagnostics name the file the case runs on where the plan says `model`
        identities = {**identities, "model": file_identity(Path(getattr(inputs, plan.runs_on)))}
    with private_copy(plan.file_change, inputs) as copy:
        return _run_plan(CaseRun(plan, adapter, inputs, identities, copy), open_handle)


def _run_plan(run: CaseRun, open_handle: Callable[[], Adapter] | None) -> list[str]:
    plan, adapter, inputs = run.plan, run.adapter, run.inputs
    for number, step in enumerate(plan.path, 1):
        reply = adapter.call(step.action.op, run.args(step.action.args))
        check_reply(reply, step.expected, step.rule, f"reaching {plan.state}, step {number} {step.describe()}",
                    step.action.args)
        run.tracker.follow(step.action, step.expected, reply)
    before = observe(adapter) if adapter.capabilities.structured_diagnostics else None
    if run.copy is not None:
        run.copy.apply()
        run.notes.append(run.copy.change.describe())
    if isinstance(plan.concurrency, CallWhileRunning):
        _run_call_while_running(run, plan.concurrency)
    elif isinstance(plan.concurrency, CancelWhileCallRuns):
        _run_cancel_while_call_runs(run, plan.concurrency, before)
    else:
        _run_call(run, before)
    model_resident = plan.call.expected.model_resident
    for probe in plan.probes:
        run.notes.append(run_probe(probe, adapter, run.tracker, inputs, plan.rule, model_resident, open_handle))
    return run.notes


def _run_call(run: CaseRun, before: Observed | None) -> None:
    plan, adapter, call = run.plan, run.adapter, run.plan.call
    reply = adapter.call(call.action.op, run.args(call.action.args))
    check_reply(reply, call.expected, plan.rule, plan.cell, call.action.args)
    if plan.op == Operation.state and reply.ok and adapter.capabilities.state and reply.value != plan.state:
        raise CaseFailed(plan.rule, f"the state query answers {reply.value!r} in state {plan.state}")
    check_after(adapter, call.expected, plan.rule, f"after {plan.cell}", run.context(call.action.args, reply, before))
    run.tracker.follow(call.action, call.expected, reply)


def _run_cancel_while_call_runs(run: CaseRun, concurrency: CancelWhileCallRuns, before: Observed | None) -> None:
    plan, adapter, call, what = run.plan, run.adapter, run.plan.call, run.plan.cell
    reply, cancel_reply, streamed, held = call_with_cancel_at_first_token(adapter, call.action,
                                                                          concurrency.cancel.action, plan.rule)
    if reply.not_supported:
        raise Unsupported(call.action.op)
    if cancel_reply is None:
        if held or (reply.ok and tokens_of(reply)) or streamed:
            raise CaseFailed(concurrency.cancel.rule, f"{what}: cancel() did not answer while the generate ran "
                                                      "(it must not wait)")
    else:
        _check_cancel_answered(cancel_reply, concurrency.cancel.rule, what)
        if reply.ok and (cancel_reply.value or {}).get("was_running") is False:
            raise CaseFailed(concurrency.cancel.rule, _race_not_arranged(held, f"{what}: the generate"))
    kept = [int(token["token_id"]) for token in streamed]
    if reply.code == call.expected.error:
        _check_kept_tokens(reply, kept, call.action.args["max_tokens"], plan.rule, what)
    check_reply(reply, call.expected, plan.rule, what, call.action.args)
    check_after(adapter, call.expected, plan.rule, f"after {what}", run.context(call.action.args, reply, before, kept))
    run.tracker.follow(call.action, call.expected, reply, streamed)


def _race_not_arranged(held: bool, what: str) -> str:
    if held:
        return f"{what} was held at its first token, yet cancel() answered that nothing was running"
    return (f"{what} ended before the cancel arrived: without the pause capability (protocol 1.1 pause_after) "
            "the race cannot be arranged; this case needs it")


def _check_cancel_answered(cancel_reply: Reply, rule: str, what: str) -> None:
    if cancel_reply.not_supported:
        raise Unsupported(Operation.cancel)
    if not cancel_reply.ok:
        raise CaseFailed(rule, f"{what}: cancel() sent while the generate ran should answer, "
                               f"got {cancel_reply.describe()}")


def _check_kept_tokens(reply: Reply, streamed: list[int], max_tokens: int, rule: str, what: str) -> None:
    """A cancelled generate keeps the tokens made before the cancel: at least one, fewer than asked,
    the ones its token events carried (and its partial value, when it sends one, says the same)."""
    if not 1 <= len(streamed) < max_tokens:
        raise CaseFailed(rule, f"{what}: a cancelled generate keeps the tokens made before the cancel; "
                               f"its events carried {len(streamed)} of max_tokens={max_tokens}")
    if isinstance(reply.value, dict) and "token_ids" in reply.value and tokens_of(reply) != streamed:
        raise CaseFailed(rule, f"{what}: the cancelled generate's partial value keeps {tokens_of(reply)}, "
                               f"its token events carried {streamed}")


def _run_call_while_running(run: CaseRun, concurrency: CallWhileRunning) -> None:
    """Start the running operation; make the case's call while it runs; check both."""
    plan, adapter = run.plan, run.adapter
    running, call = concurrency.running, plan.call
    what = f"{plan.cell} (made while {running.action.op} runs)"
    overlapped = call_while_running(adapter, running.action, call.action, concurrency.send_call_at, plan.state,
                                    plan.rule, must_answer=not concurrency.call_waits)
    run.notes += overlapped.notes
    if overlapped.call.not_supported:
        raise Unsupported(plan.op)
    if not concurrency.call_waits and overlapped.held and not overlapped.answered_while_held:
        raise CaseFailed(plan.rule, f"{what}: {plan.op} did not answer while {running.action.op} was held "
                                    f"in {plan.state}; it must answer at once")
    if overlapped.held and overlapped.state_while_held not in (None, plan.state):
        raise CaseFailed(f"states.{plan.state}", f"{what}: while {running.action.op} was held, the state query "
                                                 f"answered {overlapped.state_while_held!r}, not {plan.state}")
    running_reply = overlapped.running
    if running.expected.error is not None:
        # The call interrupts the running operation (a cancel): it must have landed.
        if running_reply.ok and (overlapped.call.value or {}).get("was_running") is False:
            raise CaseFailed(plan.rule, _race_not_arranged(overlapped.held, f"{what}: {running.action.op}"))
    elif running_reply.state == call.expected.to:
        # The state in a reply is read once the operation has returned; by then the command that
        # waited for it may already have applied. Its own reply and the state query judge that.
        running_reply = Reply(running_reply.ok, running_reply.value, running_reply.error, None)
    check_reply(running_reply, running.expected, running.rule, f"{running.action.op} (while {plan.op} was made)",
                running.action.args)
    if running.action.op == Operation.generate and running.expected.error is None:
        produced = len(tokens_of(running_reply))
        if produced != running.action.args["max_tokens"]:
            raise CaseFailed(plan.rule, f"{what}: the running generate was disturbed: {produced} of "
                                        f"{running.action.args['max_tokens']} tokens")
    if running.expected.error == ErrorCode.Cancelled:
        _check_kept_tokens(running_reply, [int(token["token_id"]) for token in overlapped.running_tokens],
                           running.action.args["max_tokens"], plan.rule, what)
    run.tracker.follow(running.action, running.expected, running_reply, overlapped.running_tokens)
    if not concurrency.call_waits:
        _check_answer_in_transient(plan, overlapped.call, running.expected.to, what)
        return
    if overlapped.answered_while_held:
        raise CaseFailed(plan.rule, f"{what}: answered while {running.action.op} was still running (held in "
                                    f"{plan.state}); it must wait")
    check_reply(overlapped.call, call.expected, plan.rule, what, call.action.args)
    check_after(adapter, call.expected, plan.rule, f"after {what}", run.context(call.action.args, overlapped.call, None))
    run.tracker.follow(call.action, call.expected, overlapped.call)


def _check_answer_in_transient(plan: CasePlan, reply: Reply, running_ends_in: str, what: str) -> None:
    """Queries and cancel answer at once, in the transient state or (if it already ended) the one after."""
    if not reply.ok:
        raise CaseFailed(plan.rule, f"{what}: expected an answer, got {reply.describe()}")
    if plan.op == Operation.state and reply.value not in (plan.state, running_ends_in):
        raise CaseFailed(plan.rule, f"{what}: the state query answers {reply.value!r}, expected "
                                    f"{plan.state} (or {running_ends_in} once it ended)")
