"""The lifecycle guard: a ``transitions`` Machine built from the table.

Every flattened branch of every cell becomes one transition: the operation is
the trigger, the cell's state the source, the outcome's state the dest, and
the branch's guard values its ``conditions`` (must be true) and ``unless``
(must be false). Which branch applies is decided by ``transitions`` firing the
trigger, not by code here; the transition that fired records its branch so
the caller also gets the error, via, lazy_init and serialized flags.

The machine answers questions; it does not hold a handle's state. The runtime
keeps its own state and asks ``guard.outcome(state, operation, guards)``
before every operation (``Spec.outcome`` answers the same from the table
directly; tests hold the two to agree).
"""

from __future__ import annotations

import functools
import threading
from typing import Mapping

from transitions import Machine

from ggufsm.spec.table import Branch, Outcome, Spec, SpecError, load_spec


class _GuardValue:
    """A transition condition: the value of one guard in the trigger's ``guards`` argument."""

    def __init__(self, name: str):
        self.name = name

    def __call__(self, *, guards: Mapping[str, bool], fired: list) -> bool | None:
        # An unknown value equals neither True nor False, so the transition
        # cannot fire on it: only fully decided branches fire.
        return bool(guards[self.name]) if self.name in guards else None


class _RecordBranch:
    """An ``after`` callback: tells the caller which branch's transition fired."""

    def __init__(self, branch: Branch):
        self.branch = branch

    def __call__(self, *, guards: Mapping[str, bool], fired: list) -> None:
        fired.append(self.branch)


class _Cursor:
    """The machine's one model: where the question being asked starts."""


class LifecycleGuard:
    """Answers, for a state, an operation and the guard values, the table's outcome."""

    # The table has an operation named "state"; the model keeps its state elsewhere.
    MODEL_ATTRIBUTE = "lifecycle_state"

    def __init__(self, spec: Spec):
        self.spec = spec
        self._cursor = _Cursor()
        self._lock = threading.Lock()  # one cursor, so one question at a time
        self.machine = Machine(
            model=self._cursor,
            states=list(spec.states),
            initial=spec.initial_state,
            transitions=[_transition(branch) for branch in spec.all_branches()],
            model_attribute=self.MODEL_ATTRIBUTE,
            auto_transitions=False,
            send_event=False,
            ignore_invalid_triggers=False,
        )

    def branch(self, state: str, operation: str, guards: Mapping[str, bool] | None = None) -> Branch:
        guards = dict(guards or {})
        self.spec.branches(state, operation)  # UnknownName before the machine sees a bad name
        fired: list[Branch] = []
        with self._lock:
            self.machine.set_state(state, model=self._cursor)
            moved = self._cursor.trigger(operation, guards=guards, fired=fired)
            landed = getattr(self._cursor, self.MODEL_ATTRIBUTE)
        if not moved:
            missing = self.spec.undecided_guards(state, operation, guards)
            if missing:
                raise KeyError(f"{state}.{operation} needs guard value(s) for: {', '.join(sorted(missing))}")
        if not moved or len(fired) != 1:
            raise SpecError(f"{state}.{operation}: no transition fired for guards {guards}")
        if landed != fired[0].outcome.to:
            raise SpecError(f"{state}.{operation}: the machine landed in {landed}, the branch says {fired[0].outcome.to}")
        return fired[0]

    def outcome(self, state: str, operation: str, guards: Mapping[str, bool] | None = None) -> Outcome:
        return self.branch(state, operation, guards).outcome


def _transition(branch: Branch) -> dict:
    return {
        "trigger": branch.operation,
        "source": branch.state,
        "dest": branch.outcome.to,
        "conditions": [_GuardValue(name) for name, value in branch.conditions if value],
        "unless": [_GuardValue(name) for name, value in branch.conditions if not value],
        "after": [_RecordBranch(branch)],
    }


@functools.lru_cache(maxsize=1)
def lifecycle_guard() -> LifecycleGuard:
    """The guard for the packaged table (built once)."""
    return LifecycleGuard(load_spec())
