"""The handle's lifecycle: the table's machine, its model, and the one path every command takes.

A :class:`Lifecycle` is the model of one :class:`~ggufsm.spec.guard.LifecycleMachine`:
the machine keeps the handle's state in its ``state`` attribute and resolves
the table's guards (inherited from :class:`Guards`) and its callbacks on it by
name. A command goes:

1. take the handle's lock: a command that arrives while another runs (in a
   transient state) waits here, which is what the table's ``serialized`` cells say;
2. fire the operation: the machine tries the cell's transitions, computing the
   guards they name, and takes one. A lazy init fires it again from
   Initialized. An outcome raises its error after ``fail`` recorded it;
3. if the machine entered a transient state (Loading, Generating), run the
   command's work there, then fire the operation again: the guards known only
   now (the load's findings, ``cancelled``) decide where it ends;
4. every state entered drops the resident data the table does not allow there.

Queries read without the lock. ``cancel`` fires through the machine without
the lock too: it stops the request it saw running, and nothing else.
"""

from __future__ import annotations

import itertools
import threading
from dataclasses import dataclass

from ggufsm.reference.runtime.commands import Cancel, Command
from ggufsm.reference.runtime.config import RuntimeConfig
from ggufsm.reference.runtime.guards import Guards
from ggufsm.reference.runtime.resident import DROPPABLE, Resident
from ggufsm.spec.errors import error_class
from ggufsm.spec.guard import Step, StepKind, lifecycle_machine
from ggufsm.spec.names import Operation, ResidentDatum
from ggufsm.spec.table import Spec

# Named once: on Python 3.11 reading a member off an Enum class goes through EnumType.__getattr__'s hook (~0.5 us
# hot), and every command reads these.
_LAZY_INIT, _ENTER = StepKind.LAZY_INIT, StepKind.ENTER


@dataclass(frozen=True)
class CommandEnd:
    """How one command ended: its number on the handle and the state it left, read as it let the handle go."""

    serial: int
    state: str


class Lifecycle(Guards):
    state: str  # the machine's: the table's state this handle is in

    def __init__(self, spec: Spec):
        self.spec = spec
        self.resident = Resident()
        self.lock = threading.Lock()  # held while a command runs
        self._allowed = {name: entry.required | entry.optional for name, entry in spec.states.items()}
        # The states whose entry can drop something; entering another (Generating and ContinuationReady, twice a
        # generate_next_token) skips keep_only's call.
        self._dropping = {name for name, allowed in self._allowed.items() if not DROPPABLE <= allowed}
        self.machine = lifecycle_machine(spec)
        self.machine.attach(self)
        # A command waiting behind another takes the lock the moment it is released, so a state query
        # made after a command returns may already see the next one's state: each thread keeps the
        # end of its own last command, read under the lock.
        self._ended = threading.local()
        self._serials = itertools.count(1)

    # ─── the one path ──

    def perform(self, operation: Operation, command: Command) -> None:
        """Run one command through the machine; raise the table's error if its outcome has one."""
        with self.lock:
            try:
                self.resident.counters["operations"] += 1
                step = self._fire(operation, command)
                if step.kind is _LAZY_INIT:
                    step = self._fire(operation, command)
                if step.kind is _ENTER:
                    self._run_in_transient_state(step, operation, command)
            finally:
                # The pair, not a CommandEnd: a frozen dataclass's init is a frame and two object.__setattr__
                # calls a token, in the Python a batched token touches cold; the query builds it.
                self._ended.last = (next(self._serials), self.state)
        if command.error is not None:
            raise command.error from command.cause

    def last_command_end(self) -> CommandEnd | None:
        """The calling thread's last command on this handle (None before its first)."""
        last = getattr(self._ended, "last", None)
        return CommandEnd(*last) if last is not None else None

    def cancel_running(self) -> bool:
        """Stop the request running now, if any (never waits). True when there was one."""
        command = Cancel(self.resident.running)
        self._fire(Operation.cancel, command)
        return command.seen_running is not None

    def _run_in_transient_state(self, entered: Step, operation: Operation, command: Command) -> None:
        try:
            command.run(self.resident)
            self._fire(operation, command)
        except BaseException:
            # Not an outcome of the table (a bug, an interrupt): no transient state may outlive the call.
            self.resident.running = None
            self.machine.set_state(entered.source, model=self)
            self.keep_allowed(command)
            raise

    def _fire(self, operation: Operation, command: Command) -> Step:
        return self.machine.fire(self, operation, command)

    # ─── the machine's callbacks ──

    def initialize(self, command: Command) -> None:
        self.resident.config = RuntimeConfig()

    def start(self, command: Command) -> None:
        command.start(self.resident)

    def commit(self, command: Command) -> None:
        if command.raised:
            guard, error = next(iter(command.raised.items()))
            raise RuntimeError(f"the {guard} guard raised {error!r}, yet the table's outcome is a success: "
                               "a guard whose false value can succeed must not raise")
        command.commit(self.resident)

    def fail(self, command: Command) -> None:
        step = command.step
        assert step is not None and step.error is not None
        message = "; ".join(command.reasons_for(step)) or self._refusal(step)
        error = error_class(step.error)(message, state_after=step.to)
        if ResidentDatum.last_error in self._allowed[step.to]:
            self.resident.last_error = error
        self.resident.counters["errors"] += 1
        command.fail(self.resident)
        command.error = error
        if command.cause is None and command.raised:
            command.cause = next(iter(command.raised.values()))

    def keep_allowed(self, command: Command) -> None:
        if self.state in self._dropping:
            self.resident.keep_only(self._allowed[self.state])

    def _refusal(self, step: Step) -> str:
        allowed = self.spec.states[step.source].allowed_summary
        return f"{step.operation} is not allowed in state {step.source} (allowed there: {allowed})"
