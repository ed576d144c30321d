"""Two calls on one handle, the second sent while the first provably runs: pauses, event order, limits.

The running operation is asked to pause (protocol 1.1 ``pause_after`` /
``pause``; an in-process Python adapter pauses in its token callback or its
model path) at the point the plan names: a generate after its first token, a
load once it has started reading. While it is held it cannot end, so the
kit knows it is running when the second call goes out, and judges from the
order of answers and events:

- a query or ``cancel`` must answer while the operation is held (the kit
  waits for that answer; a generous limit only ends a wait that would never
  end, and fails the case);
- a command that must wait must not answer while the operation is held:
  the kit watches for ``WATCH_S`` before it lets the operation go on. A
  correct implementation cannot answer then (the operation holds the handle),
  so the watch never fails one; it only bounds how long a wrong one is given
  to show itself.
- where the implementation reports states, the state query must answer the
  transient state (Loading, Generating) while the operation is held.

An implementation that cannot pause gets the 1.0 arrangement: the call goes
out at the running generate's first token, or once the state query answers
the transient state a load runs in; the verdict then rests on the replies.
Nothing here sleeps.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ggufsm.conformance.adapter import Adapter, Gate, PythonAdapter, Reply
from ggufsm.conformance.plan.cases import Trigger
from ggufsm.conformance.plan.recipes import Action
from ggufsm.conformance.run.checks import CaseFailed
from ggufsm.spec.names import Operation

# How long a command that must wait is watched, while the operation it waits for is held, for an
# answer it must not give. Only a wrong implementation can answer in it.
WATCH_S = 0.05
ANSWER_LIMIT_S = 10.0        # a query or cancel that has not answered by then never will: the case fails
DEFAULT_OPERATION_S = 60.0   # one operation's limit where the adapter sets none


def waiting_limit(adapter: Adapter) -> float:
    """How long a call may take that waits behind a running operation: that operation and its own."""
    return 2 * (adapter.operation_timeout or DEFAULT_OPERATION_S)


def in_process(adapter: Adapter) -> bool:
    """Only in-process timing is exact enough to judge, without a pause, whether a call answered while another ran."""
    return isinstance(getattr(adapter, "inner", adapter), PythonAdapter)


class Call:
    """A call on its own thread: its reply (or the exception it raised) and the token events it got."""

    def __init__(self, adapter: Adapter, action: Action, *, gate: Gate | None = None,
                 on_token: Callable[[dict[str, Any]], None] | None = None, timeout: float | None = None,
                 on_done: Callable[[], None] | None = None):
        self.tokens: list[dict[str, Any]] = []
        self.done = threading.Event()
        self._reply: Reply | None = None
        self._error: BaseException | None = None

        def forward(token: dict[str, Any]) -> None:
            self.tokens.append(token)
            if on_token is not None:
                on_token(token)

        streams = on_token is not None or action.op == Operation.generate

        def run() -> None:
            try:
                self._reply = adapter.call(action.op, dict(action.args), on_token=forward if streams else None,
                                           timeout=timeout, gate=gate)
            except Exception as error:  # noqa: BLE001  raised again on the case's thread
                self._error = error
            finally:
                self.done.set()
                if on_done is not None:
                    on_done()

        self.thread = threading.Thread(target=run, daemon=True, name=f"ggufsm-case-{action.op}")
        self.thread.start()

    def result(self, limit: float, what: str, rule: str) -> Reply:
        if not self.done.wait(limit):
            raise CaseFailed(rule, f"{what}: no answer within {limit:.0f} s (deadlock?)")
        if self._error is not None:
            raise self._error
        assert self._reply is not None
        return self._reply


def _holding(gate: Gate) -> Callable[[dict[str, Any]], None]:
    def hold(token: dict[str, Any]) -> None:
        gate.hold()
    return hold


def held(adapter: Adapter, running: Action, trigger: Trigger, state: str, rule: str) -> tuple[Call, Gate | None, list[str]]:
    """Start `running` and return once it is held at the trigger (paused, or, without pauses, at its
    first token / once the state query answers `state`), or once it has ended."""
    signal = threading.Event()   # set when the operation pauses, sends a token, or ends
    gate = Gate(after_tokens=1, on_pause=signal.set) if adapter.capabilities.pause else None
    first_token = running.op == Operation.generate and (gate is not None or trigger == Trigger.first_token)
    on_token = (lambda token: signal.set()) if first_token else None
    if gate is None and first_token and in_process(adapter):
        # An in-process generate that cannot pause runs our token callback on its own thread: holding
        # that callback holds the generate, as a pause would.
        gate = Gate(after_tokens=1, on_pause=signal.set)
        on_token = _holding(gate)
        call = Call(adapter, running, on_token=on_token, timeout=waiting_limit(adapter), on_done=signal.set)
    else:
        call = Call(adapter, running, gate=gate, on_token=on_token, timeout=waiting_limit(adapter),
                    on_done=signal.set)
    notes: list[str] = []
    if gate is not None:
        while not (gate.paused.is_set() or call.done.is_set()):
            signal.wait()
            signal.clear()
        notes.append(f"{running.op} paused" if gate.paused.is_set() else f"{running.op} ended without pausing")
    elif trigger == Trigger.first_token:
        signal.wait()
    elif adapter.capabilities.state:
        while not call.done.is_set() and adapter.current_state() != state:
            pass
    return call, gate, notes


@dataclass
class Overlapped:
    """What happened when a call was sent while another ran."""

    running: Reply
    call: Reply
    sent_while_running: bool              # the call went out while the first still ran (held, or before its end)
    held: bool                            # the running operation was paused when the call went out
    answered_while_held: bool = False     # the call answered before the running operation was let go on
    state_while_held: str | None = None   # what the state query answered while it was held
    running_tokens: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def call_while_running(adapter: Adapter, running: Action, call: Action, send_at: Trigger, state: str, rule: str,
                       *, must_answer: bool) -> Overlapped:
    """Start `running`, hold it, make `call` meanwhile; a call that must answer (a query, cancel) is
    waited for while it is held, one that must wait is watched for WATCH_S. Then let it go on."""
    runner, gate, notes = held(adapter, running, send_at, state, rule)
    is_held = gate is not None and gate.paused.is_set() and not runner.done.is_set()
    observed_state = adapter.current_state() if is_held and adapter.capabilities.state else None
    sent_while_running = not runner.done.is_set()
    if not sent_while_running:
        notes.append(f"{state} not observed; the call was made after {running.op}")
    caller = Call(adapter, call, timeout=waiting_limit(adapter))
    if is_held:
        caller.done.wait(ANSWER_LIMIT_S if must_answer else WATCH_S)
    elif sent_while_running and not must_answer and in_process(adapter):
        caller.done.wait(WATCH_S)   # without a pause, in-process: the token callback holds the generate
    answered_while_held = caller.done.is_set() and not runner.done.is_set()
    if gate is not None:
        gate.resume()
    running_reply = runner.result(waiting_limit(adapter), f"{running.op} (while {call.op} was made)", rule)
    call_reply = caller.result(waiting_limit(adapter), f"{call.op} made while {running.op} runs", rule)
    return Overlapped(running_reply, call_reply, sent_while_running, is_held, answered_while_held, observed_state,
                      runner.tokens, notes)


def call_with_cancel_at_first_token(adapter: Adapter, action: Action, cancel: Action,
                                    rule: str = "cancel") -> tuple[Reply, Reply | None, list[dict[str, Any]], bool]:
    """`action` (a generate), with `cancel` sent from another thread once its first token is out (the
    generate held there where the implementation can pause). Returns the generate's reply, the
    cancel's (None if it did not answer while the generate ran), the token events, and whether the
    generate was held when the cancel went out."""
    if adapter.capabilities.pause:
        overlapped = call_while_running(adapter, action, cancel, Trigger.first_token, "", rule, must_answer=True)
        cancel_reply = overlapped.call if overlapped.answered_while_held or not overlapped.held else None
        return overlapped.running, cancel_reply, overlapped.running_tokens, overlapped.held
    return (*_cancel_in_token_callback(adapter, action, cancel), False)


def _cancel_in_token_callback(adapter: Adapter, action: Action,
                              cancel: Action) -> tuple[Reply, Reply | None, list[dict[str, Any]]]:
    """Without pauses: the cancel goes out from the first token event's callback, which holds an
    in-process generate (over a pipe, the generate goes on meanwhile)."""
    cancels: list[Call] = []
    tokens: list[dict[str, Any]] = []

    def on_token(token: dict[str, Any]) -> None:
        tokens.append(token)
        if cancels:
            return
        cancels.append(Call(adapter, cancel))
        cancels[0].done.wait(ANSWER_LIMIT_S)

    reply = adapter.call(action.op, dict(action.args), on_token=on_token)
    if not cancels or not cancels[0].done.is_set():
        return reply, None, tokens
    return reply, cancels[0].result(0, cancel.op, cancel.op), tokens
