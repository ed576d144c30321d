"""Two calls on one handle, the second sent while the first runs: the threads, triggers and time limits.

The plan says which call runs first and when the second is sent
(``plan.cases.Trigger``): at the running generate's first token event, or
once the state query reports the transient state a load runs in. Nothing
here sleeps: a trigger is an event of the implementation, and a time limit
only ends a call that would otherwise never answer.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ggufsm.conformance.adapter import Adapter, PythonAdapter, Reply
from ggufsm.conformance.plan.cases import Trigger
from ggufsm.conformance.plan.recipes import Action
from ggufsm.conformance.run.checks import CaseFailed

# How long a concurrent call is given to show that it does not wait (queries, cancel) or that it
# does (commands behind a running operation) before the case moves on.
OVERLAP_WINDOW_S = 0.05
ANSWER_TIMEOUT_S = 30.0      # for a cancel, which must answer at once
DEFAULT_OPERATION_S = 60.0   # one operation's limit where the adapter sets none


def waiting_limit(adapter: Adapter) -> float:
    """How long a call may take that waits behind a running operation: that operation and its own."""
    return 2 * (adapter.operation_timeout or DEFAULT_OPERATION_S)


def in_process(adapter: Adapter) -> bool:
    """Only in-process timing is exact enough to judge whether a call answered while another ran."""
    return isinstance(getattr(adapter, "inner", adapter), PythonAdapter)


class _Outcome:
    """A call's reply or the exception it raised (e.g. the implementation died), kept for the case's thread."""

    def __init__(self) -> None:
        self.reply: Reply | None = None
        self.error: BaseException | None = None

    def run(self, call: Callable[[], Reply]) -> None:
        try:
            self.reply = call()
        except Exception as error:   # raised again on the case's thread
            self.error = error

    def result(self) -> Reply:
        if self.error is not None:
            raise self.error
        assert self.reply is not None
        return self.reply


def call_with_cancel_at_first_token(adapter: Adapter, action: Action, cancel: Action) -> tuple[Reply, Reply | None]:
    """`action` (a generate), with `cancel` sent from another thread as soon as its first token
    arrives. The cancel's reply is None if it did not answer while the generate ran (or if no token came)."""
    cancels: list[_Outcome] = []

    def on_token(token: dict[str, Any]) -> None:
        if cancels:
            return
        outcome = _Outcome()
        cancels.append(outcome)
        canceller = threading.Thread(target=outcome.run, args=(lambda: adapter.call(cancel.op, dict(cancel.args)),),
                                     daemon=True)
        canceller.start()
        canceller.join(ANSWER_TIMEOUT_S)

    reply = adapter.call(action.op, dict(action.args), on_token=on_token)
    if not cancels:
        return reply, None
    outcome = cancels[0]
    if outcome.error is not None:
        raise outcome.error
    return reply, outcome.reply


@dataclass
class Overlapped:
    """What happened when a call was sent while another ran."""

    running: Reply
    call: Reply
    sent_while_running: bool              # the trigger fired: the call went out while the first still ran
    answered_while_running: bool = False  # ... and answered within OVERLAP_WINDOW_S, while the first was held
    notes: list[str] = field(default_factory=list)


def call_while_running(adapter: Adapter, running: Action, call: Action, send_at: Trigger, state: str,
                       rule: str) -> Overlapped:
    """Start `running`; send `call` at the trigger (or after `running`, if the trigger never fires).
    A call or a running operation that never answers fails the case under `rule`."""
    limit = waiting_limit(adapter)
    call_outcome = _Outcome()
    caller = threading.Thread(target=call_outcome.run, daemon=True,
                              args=(lambda: adapter.call(call.op, dict(call.args), timeout=limit),))
    sent: dict[str, bool] = {}

    def send_call() -> None:
        if sent:
            return
        sent["while_running"] = True
        caller.start()
        caller.join(OVERLAP_WINDOW_S)   # queries and cancel answer here; commands should still be waiting
        sent["answered"] = not caller.is_alive()

    notes: list[str] = []
    if send_at == Trigger.first_token:
        running_reply = adapter.call(running.op, dict(running.args), on_token=lambda token: send_call())
    else:
        running_reply = _run_until_observed(adapter, running, state, send_call, notes, rule)
    sent_while_running = bool(sent)
    if not sent:
        caller.start()   # the running operation gave no sign of running: make the call after it
        notes.append(f"{state} not observed; the call was made after {running.op}")
    caller.join(limit)
    if caller.is_alive():
        raise CaseFailed(rule, f"{call.op} made while {running.op} runs: no answer within {limit:.0f} s (deadlock?)")
    return Overlapped(running_reply, call_outcome.result(), sent_while_running, sent.get("answered", False), notes)


def _run_until_observed(adapter: Adapter, running: Action, state: str, send_call: Callable[[], None],
                        notes: list[str], rule: str) -> Reply:
    """Run `running` (a load) on a thread; send the call once the state query reports `state`
    (never before, or the call could overtake it)."""
    limit = waiting_limit(adapter)
    outcome = _Outcome()
    runner = threading.Thread(target=outcome.run, args=(lambda: adapter.call(running.op, dict(running.args)),),
                              daemon=True)
    runner.start()
    if adapter.capabilities.state:
        while runner.is_alive():
            if adapter.current_state() == state:
                send_call()
                notes.append(f"{state} observed")
                break
    runner.join(limit)
    if runner.is_alive():
        raise CaseFailed(rule, f"{running.op} did not finish within {limit:.0f} s")
    return outcome.result()
