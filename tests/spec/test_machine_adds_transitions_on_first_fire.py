"""The table's machine adds an operation's transitions the first time it is fired: the same transitions, in
the same order, as the whole table gives it, added once however many threads fire it first."""

from __future__ import annotations

import threading

import pytest

from ggufsm.spec.guard import Decision, LifecycleMachine, _GivenGuards, operation_transitions
from ggufsm.spec.names import Guard, Operation, State
from ggufsm.spec.table import load_spec

SPEC = load_spec()


def described(event) -> dict[str, list[tuple]]:
    """An event's transitions, source by source, as (dest, conditions, unless, step)."""
    return {source: [(t.dest, [c.func for c in t.conditions if c.target], [c.func for c in t.conditions if not c.target],
                      t.step) for t in transitions]
            for source, transitions in event.transitions.items()}


def expected(operation: str) -> dict[str, list[tuple]]:
    rows: dict[str, list[tuple]] = {}
    for transition in operation_transitions(SPEC, operation):
        rows.setdefault(transition["source"], []).append(
            (transition["dest"], sorted(transition["conditions"], key=list(SPEC.guards).index),
             sorted(transition["unless"], key=list(SPEC.guards).index), transition["step"]))
    return rows


def test_a_fresh_machine_adds_only_the_transitions_of_the_operation_it_fires():
    machine = LifecycleMachine(SPEC)
    assert not machine.events
    model = _GivenGuards(SPEC)
    machine.attach(model)
    model.given = {Guard.config_valid: True}
    step = machine.fire(model, Operation.init_runtime, Decision())
    assert step.to == State.Initialized
    assert set(machine.events) == {Operation.init_runtime}


@pytest.mark.parametrize("operation", SPEC.commands)
def test_an_operation_added_on_first_use_has_exactly_the_tables_transitions_in_order(operation):
    assert described(LifecycleMachine(SPEC).event(operation)) == expected(operation)


def test_threads_firing_an_operation_first_at_once_add_its_transitions_once():
    machine = LifecycleMachine(SPEC)
    start = threading.Barrier(4)
    events = []

    def first_use():
        start.wait()
        events.append(machine.event(Operation.generate))

    threads = [threading.Thread(target=first_use) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(events) == 4 and all(event is events[0] for event in events)
    assert described(events[0]) == expected(Operation.generate)


def test_a_query_or_an_unknown_name_is_no_event():
    machine = LifecycleMachine(SPEC)
    for name in (*SPEC.queries, "no_such_operation"):
        with pytest.raises(KeyError):
            machine.event(name)
    assert not machine.events


def test_complete_adds_every_command():
    assert set(LifecycleMachine(SPEC).complete().events) == set(SPEC.commands)
