"""The lifecycle machine: a ``transitions`` Machine built from the table, driving each handle's state.

There is one :class:`LifecycleMachine` per table (:func:`lifecycle_machine`),
its operations' transitions added the first time each is fired, and every
runtime handle is a model it fires on: the model keeps its state in
its ``state`` attribute, which the machine reads and writes, and the machine
resolves every condition and callback **by name** on the model, as
``transitions`` does. The model implements one small function per table
guard, named as the table names it, and the callbacks in :data:`CALLBACKS`.
Which transition fires is decided by ``transitions`` evaluating those
conditions, never by code here.

A cell becomes transitions (trigger: the operation; source: the cell's state):

- a branch without ``via``: one transition to its state (an internal transition,
  ``dest=None``, when it stays), its guards as ``conditions`` (must be true)
  and ``unless`` (must be false). Before the state changes it calls
  ``commit``, or ``fail`` when the branch names an error.
- a branch ``via`` a transient state T: an *entry* transition to T on its
  guards known ``before`` (calling ``start``), and an *exit* transition from T
  on its guards known ``while_running`` (calling ``commit`` or ``fail``). The
  runtime fires the operation once to enter T, does the operation's work
  there, and fires it again to leave. The checker proves the exit depends on
  nothing but those guards.
- a ``lazy_init`` cell: one transition to Initialized calling ``initialize``;
  the runtime fires the operation again and the Initialized cell applies.
- ``serialized`` cells and queries are not transitions. A command that arrives
  while another runs waits on the handle's lock, and is fired once that one
  has left its transient state; a query reads the model and changes nothing.

Entering a state (a real change, not an internal transition) calls
``keep_allowed``, which drops the resident data the new state does not allow.

Guards are lazy. A cell's transitions are tried in table order and a
transition's guards in the order of the table's ``guards`` list, stopping at
the first that fails; each guard is computed at most once per operation, its
value kept in the operation's :class:`Decision` (the trigger's one argument,
passed on to every guard and callback). A guard's ``needs`` are always named
true and listed before it (the checker proves both), so a guard is computed
only after the guards it needs have held: a malformed prompt is never
measured, and a refused load never enters Loading, where the file is read.

A named error raised inside a guard function makes the guard false, and its
message the reason: the table's branch for that value then applies like any
other (its error, its target state, last_error recorded by ``fail``).

The machine's events and transitions are subclasses (as ``transitions``' own
extensions make theirs) that run a trigger without the hooks this machine
never registers and without the library's per-step logging: its generic path
made about 110 Python calls per trigger, half the cost of a
generate_next_token's two triggers (``ggufsm bench guard``). The machine
refuses to build if a hook the lean path would skip is ever registered.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import Enum
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, cast

from transitions import Machine, MachineError
from transitions.core import Condition, Event, Transition
from transitions.core import State as MachineState

from ggufsm.spec.errors import GgufsmError
from ggufsm.spec.table import LAZY_INIT_STATE, Branch, Spec, SpecError

# The model's attribute the machine keeps the state in.
STATE_ATTRIBUTE = "state"


class StepKind(str, Enum):
    LAZY_INIT = "lazy_init"  # initialised with the defaults: fire the operation again
    ENTER = "enter"          # entered the transient state: do the work, then fire again to leave
    FINISH = "finish"        # the operation's outcome: where it ends, and its error if any


# The callbacks the model implements, each called with the operation's Decision.
INITIALIZE = "initialize"      # lazy init: configure the runtime with the defaults
START = "start"                # entering a transient state: make what the work needs resident
COMMIT = "commit"              # a successful outcome, before the state changes
FAIL = "fail"                  # an outcome with an error, before the state changes
KEEP_ALLOWED = "keep_allowed"  # a state was entered: drop the resident data it does not allow
CALLBACKS = (INITIALIZE, START, COMMIT, FAIL, KEEP_ALLOWED)


@dataclass(frozen=True)
class Step:
    """What one fired transition did."""

    kind: StepKind
    operation: str
    source: str              # the state the transition left
    to: str                  # the state it entered (the transient state for ENTER)
    error: str | None = None
    guards: tuple[str, ...] = ()   # the guards its transition names: what decided it


class Decision:
    """One operation's way through the machine: the guard values computed so far (each at most
    once), the reasons the failing ones gave, and the step the machine took last."""

    def __init__(self) -> None:
        self.values: dict[str, bool] = {}
        self.reasons: list[str] = []
        self.step: Step | None = None

    # Shared empty mappings until a guard gives a reason or raises, when `evaluate` gives the Decision its own:
    # most operations have neither, and two dicts a command were allocations in the Python a batched token
    # touches cold.
    reasons_of: Mapping[str, list[str]] = MappingProxyType({})  # guard -> the reasons its function gave
    raised: Mapping[str, GgufsmError] = MappingProxyType({})  # guard -> the named error its function raised

    def holds(self, condition: bool, reason: str) -> bool:
        """For guard functions: the condition, keeping the reason when it does not hold."""
        if not condition:
            self.reasons.append(reason)
        return condition

    def evaluate(self, guard: str, function: Callable[[Decision], object]) -> bool:
        first = len(self.reasons)
        try:
            value = bool(function(self))
        except GgufsmError as error:
            value = False
            self.reasons.append(error.message)
            self.raised = {**self.raised, guard: error}
        self.values[guard] = value
        if len(self.reasons) > first:  # a guard that gave no reason has no entry (a list less per guard asked)
            self.reasons_of = {**self.reasons_of, guard: self.reasons[first:]}
        return value

    def reasons_for(self, step: Step) -> list[str]:
        """The reasons of the guards that decided `step`, in the table's order. A guard computed on the
        way to another branch says nothing about this outcome: a load from RecoverableError without a
        model asks model_resident (false: "no model is loaded") before it enters Loading, and the load's
        error is the file's alone."""
        return [reason for guard in step.guards for reason in self.reasons_of.get(guard, ()) if reason]


class GuardCondition(Condition):
    """A condition naming a table guard: resolved by name on the model, computed once per operation."""

    def __init__(self, func, target: bool = True):
        super().__init__(func, target)
        self.guard = cast(str, func)  # the name, typed once (check runs several times a token)

    def check(self, event_data) -> bool:
        decision: Decision = event_data.args[0]
        guard = self.guard
        value = decision.values.get(guard)
        if value is None:
            # By name on the model: `attach` proved every guard a callable attribute of it, the one case of
            # the library's resolve_callable this machine meets.
            value = decision.evaluate(guard, getattr(event_data.model, guard))
        return value == self.target


class GuardedTransition(Transition):
    """A transition of the table: its conditions evaluated in the table's guard order, true and false
    ones alike, and the step it takes put on the Decision before any callback runs (so ``commit`` and
    ``fail`` know which outcome they apply)."""

    condition_cls = GuardCondition

    def __init__(self, *args, step: Step, guard_order: Mapping[str, int], **kwargs):
        super().__init__(*args, **kwargs)
        self.step = step
        self.conditions.sort(key=lambda condition: guard_order[cast(str, condition.func)])
        # (guard name, the value it must have), in that order: what ``take`` checks.
        self.guard_checks = tuple((cast(str, condition.func), condition.target) for condition in self.conditions)
        self.before_names = tuple(cast(str, name) for name in self.before)  # the table names every callback

    def execute(self, event_data) -> bool:
        """The library's execute, less the hooks this machine never registers (prepare, after, exit,
        final, the machine-wide ones) and its per-step logging: conditions, ``before``, the state
        change and the new state's ``on_enter``, as ``transitions`` runs them (see ``take``)."""
        return self.take(event_data.model, event_data.args[0], event_data.machine)

    def take(self, model, decision: Decision, machine: Machine) -> bool:
        """This transition for `model` if its guards hold: the step put on the Decision, the guards in the
        table's order (each computed at most once per operation), ``before``, the state set and the new
        state's ``on_enter``. The trigger calls it with the model and the Decision themselves: the
        library's EventData per trigger and a condition object's call per guard were a third of a fire's
        Python, and after a decode pass has streamed the weights through the caches every object a token
        touches is a cache miss (a generate_next_token's Python: 30 us hot, ~250 us cold)."""
        decision.step = self.step
        values = decision.values
        for guard, target in self.guard_checks:
            value = values.get(guard)
            if value is None:
                # By name on the model: `attach` proved every guard a callable attribute of it, the one case of
                # the library's resolve_callable this machine meets.
                value = decision.evaluate(guard, getattr(model, guard))
            if value != target:
                return False
        for name in self.before_names:  # the callbacks by name on the model (as `attach` proved them), with the Decision
            getattr(model, name)(decision)
        if self.dest is not None:
            # The library's set_state for one model and a state name: its State, looked up once, gives the
            # value the model holds.
            value, on_enter = self._entered or self._resolve_dest(machine)
            setattr(model, STATE_ATTRIBUTE, value)
            for name in on_enter:
                getattr(model, name)(decision)
        return True

    _entered: tuple[Any, tuple[str, ...]] | None = None  # the value the dest's State gives the model, its on_enter names

    def _resolve_dest(self, machine: Machine) -> tuple[Any, tuple[str, ...]]:
        dest: MachineState = machine.get_state(cast(str, self.dest))
        self._entered = dest.value, tuple(cast(str, name) for name in dest.on_enter)
        return self._entered


class TableEvent(Event):
    """An operation of the table: the library's trigger, less the queue, the machine-wide hooks this
    machine never registers and the per-step logging. The transitions from the model's state are tried
    in order until one executes; a trigger with none from that state raises MachineError."""

    def trigger(self, model, *args, **kwargs) -> bool:
        return self.take(model, args[0])

    def take(self, model, decision: Decision) -> bool:
        """The trigger for the machine's own fire, without packing its arguments (a tuple and a dict a fire)."""
        name = getattr(model, STATE_ATTRIBUTE)
        transitions = self.transitions.get(name)
        if transitions is None:
            raise MachineError(f"Can't trigger event {self.name} from state {name}!")
        machine = self.machine
        # The machine's transition_cls; typing.cast at run time was a Python call a fire, two a token.
        if TYPE_CHECKING:
            guarded = cast("list[GuardedTransition]", transitions)
        else:
            guarded = transitions
        for transition in guarded:
            if transition.take(model, decision, machine):
                return True
        return False


class LifecycleMachine(Machine):
    """The table's machine: one per table, firing on any model attached to it.

    Each model holds its own state in its ``state`` attribute, which the
    machine reads and writes; the machine holds no model (``transitions``
    registers models only to bind convenience methods on them), so any number
    of handles share it, and a dropped handle is freed at once. Firing takes
    the model: ``machine.fire(model, operation, decision)``.
    """

    transition_cls = GuardedTransition
    event_cls = TableEvent

    def __init__(self, spec: Spec):
        super().__init__(
            model=None,
            states=[{"name": state, "on_enter": [KEEP_ALLOWED]} for state in spec.states],
            initial=spec.initial_state,
            transitions=(),
            model_attribute=STATE_ATTRIBUTE,
            auto_transitions=False,
            send_event=False,
            ignore_invalid_triggers=False,
        )
        self.spec = spec
        # An operation's transitions are added when it is first fired (or by `complete`): a fresh process's
        # first token fires 3 of the table's commands (init_runtime, load_model, generate: 40 of its 95
        # transitions), and building all of them was 1.5-3 ms of CPU in its first Runtime(). An event is
        # published in `_built` only once all its transitions are in, so a fire on another thread never
        # sees one half added.
        self._built: dict[str, TableEvent] = {}
        self._adding = threading.Lock()
        self._check_hooks()

    def event(self, operation: str) -> TableEvent:
        """The operation's event, with every transition the table gives it (added now if not yet).
        KeyError for a name that is not a command of the table (a query is no event)."""
        built = self._built.get(operation)
        if built is not None:
            return built
        if operation not in self.spec.operations or self.spec.operations[operation].is_query:
            raise KeyError(operation)
        with self._adding:
            if operation not in self._built:
                self.add_transitions(operation_transitions(self.spec, operation))
                self._check_hooks()
                self._built[operation] = cast(TableEvent, self.events[operation])
        return self._built[operation]

    def complete(self) -> LifecycleMachine:
        """Add every command's transitions now (for readers of `events`: tests, docs)."""
        for operation in self.spec.commands:
            self.event(operation)
        return self

    def _check_hooks(self) -> None:
        skipped = self._hooks_the_lean_path_skips()
        if skipped:
            raise SpecError(f"the table's machine runs a lean trigger path that would skip {', '.join(skipped)}")

    def _hooks_the_lean_path_skips(self) -> list[str]:
        hooks = [name for name in ("prepare_event", "before_state_change", "after_state_change", "finalize_event",
                                   "on_exception", "on_final") if getattr(self, name)]
        hooks += [f"{state.name}.on_exit" for state in self.states.values() if state.on_exit or state.final]
        hooks += [f"{event.name} prepare/after" for event in self.events.values()
                  for transitions in event.transitions.values() for transition in transitions
                  if transition.prepare or transition.after]
        return hooks

    def attach(self, model: Any) -> None:
        """Check the model resolves every guard and callback by name, and put it in the initial state."""
        missing = [name for name in (*self.spec.guards, *CALLBACKS) if not callable(getattr(model, name, None))]
        if missing:
            raise TypeError(f"{type(model).__name__} cannot be the lifecycle's model: it has no {', '.join(missing)}")
        self.set_state(self.spec.initial_state, model=model)

    def fire(self, model: Any, operation: str, decision: Decision) -> Step:
        """Trigger the operation on the model; the step the transition that fired took."""
        decision.step = None
        event = self._built.get(operation) or self.event(operation)
        if not event.take(model, decision):
            raise SpecError(f"{getattr(model, STATE_ATTRIBUTE)}.{operation}: no transition of the table's machine fired")
        assert decision.step is not None
        return decision.step


@functools.lru_cache(maxsize=8)
def lifecycle_machine(spec: Spec) -> LifecycleMachine:
    """The machine of a table, built once."""
    return LifecycleMachine(spec)


def machine_transitions(spec: Spec) -> tuple[dict, ...]:
    """The table's cells as ``transitions`` transition dicts (see the module docstring), command by command."""
    return tuple(transition for operation in spec.commands for transition in operation_transitions(spec, operation))


def operation_transitions(spec: Spec, operation: str) -> tuple[dict, ...]:
    """One command's cells, state by state, as transition dicts: its entries and finishes in the table's
    order, then the exits from its transient states (one per transient state and guards known while running)."""
    order = MappingProxyType({name: position for position, name in enumerate(spec.guards)})
    late = {name for name, guard in spec.guards.items() if guard.while_running}
    transitions: list[dict] = []
    exits: dict[tuple, dict] = {}
    for state in spec.states:
        branches = [branch for branch in spec.cells[(state, operation)] if not branch.outcome.serialized]
        if any(branch.outcome.lazy_init for branch in branches):
            step = Step(StepKind.LAZY_INIT, operation, state, LAZY_INIT_STATE)
            transitions.append(_transition(step, (), INITIALIZE, order))
            continue
        entries: set[tuple] = set()
        for branch in branches:
            outcome = branch.outcome
            if outcome.via is None:
                step = Step(StepKind.FINISH, operation, state, outcome.to, outcome.error,
                            tuple(name for name, _ in branch.conditions))
                transitions.append(_transition(step, branch.conditions, _finish_callback(step), order))
                continue
            before = tuple((name, value) for name, value in branch.conditions if name not in late)
            if before not in entries:
                entries.add(before)
                step = Step(StepKind.ENTER, operation, state, outcome.via)
                transitions.append(_transition(step, before, START, order))
            running = tuple((name, value) for name, value in branch.conditions if name in late)
            step = Step(StepKind.FINISH, operation, outcome.via, outcome.to, outcome.error,
                        tuple(name for name, _ in running))
            exits.setdefault((outcome.via, running), _transition(step, running, _finish_callback(step), order))
    return (*transitions, *exits.values())


def _finish_callback(step: Step) -> str:
    return FAIL if step.error else COMMIT


def _transition(step: Step, conditions, callback: str, order: Mapping[str, int]) -> dict:
    return {
        "trigger": step.operation,
        "source": step.source,
        "dest": None if step.to == step.source else step.to,
        "conditions": tuple(name for name, value in conditions if value),
        "unless": tuple(name for name, value in conditions if not value),
        "before": callback,
        "step": step,
        "guard_order": order,
    }


# ─── asking the machine questions (tests, docs) ──────────────────────────────


class _GivenGuards:
    """A model whose guards answer from given values (an exception given is raised), and whose callbacks
    do nothing; it notes which guards were asked, and in which state."""

    def __init__(self, spec: Spec):
        self.given: Mapping[str, object] = {}
        self.question = ""
        self.asked: list[tuple[str, str]] = []
        for name in spec.guards:
            setattr(self, name, self._answer(name))
        for name in CALLBACKS:
            setattr(self, name, lambda decision: None)

    def _answer(self, name: str) -> Callable[[Decision], bool]:
        def answer(decision: Decision) -> bool:
            self.asked.append((name, getattr(self, STATE_ATTRIBUTE)))
            if name not in self.given:
                raise KeyError(f"{self.question} needs guard value(s) for: {name}")
            value = self.given[name]
            if isinstance(value, BaseException):
                raise value
            return bool(value)
        return answer


@dataclass(frozen=True)
class Walk:
    """Where the machine took one operation, step by step, and the guards it asked on the way."""

    steps: tuple[Step, ...]
    asked: tuple[tuple[str, str], ...]  # (guard, the state the machine was in when it asked)
    decision: Decision

    @property
    def to(self) -> str:
        return self.steps[-1].to

    @property
    def error(self) -> str | None:
        return self.steps[-1].error

    @property
    def via(self) -> str | None:
        return next((step.to for step in self.steps if step.kind is StepKind.ENTER), None)

    @property
    def lazy_init(self) -> bool:
        return self.steps[0].kind is StepKind.LAZY_INIT


class MachineOracle:
    """The machine asked what an operation does from a state with given guard values.

    It fires the operation as the runtime does (again after a lazy init, and
    again to leave a transient state), with guards that answer from the given
    values; a value it needs but was not given raises KeyError naming the guard.
    """

    def __init__(self, spec: Spec):
        self.spec = spec
        self.model = _GivenGuards(spec)
        self.machine = lifecycle_machine(spec).complete()  # its readers (tests, docs) see every event
        self.machine.attach(self.model)
        self._lock = threading.Lock()  # one model, so one question at a time

    def walk(self, state: str, operation: str, guards: Mapping[str, object] | None = None) -> Walk:
        self.spec.branches(state, operation)  # UnknownName before the machine sees a bad name
        with self._lock:
            self.machine.set_state(state, model=self.model)
            self.model.given, self.model.question, self.model.asked = dict(guards or {}), f"{state}.{operation}", []
            decision, steps = Decision(), list[Step]()
            while not steps or steps[-1].kind is not StepKind.FINISH:
                steps.append(self.machine.fire(self.model, operation, decision))
            landed = getattr(self.model, STATE_ATTRIBUTE)
            if landed != steps[-1].to:
                raise SpecError(f"{state}.{operation}: the machine is in {landed}, its step says {steps[-1].to}")
            return Walk(tuple(steps), tuple(self.model.asked), decision)


@functools.lru_cache(maxsize=1)
def machine_oracle() -> MachineOracle:
    """The oracle for the packaged table (built once)."""
    from ggufsm.spec.table import load_spec

    return MachineOracle(load_spec())


def branch_walks_like(branch: Branch, walk: Walk) -> bool:
    """The machine's walk ends as the table's branch says: same state, error, via and lazy init."""
    outcome = branch.outcome
    return (walk.to, walk.error, walk.via, walk.lazy_init) == (outcome.to, outcome.error, outcome.via, outcome.lazy_init)
