"""The transitions Machine agrees with the table, and the table keeps the rules it claims.

The guard machine and ``Spec.outcome`` are both derived from lifecycle.yaml,
so their agreement checks the machine's construction (flattening, `same`,
lazy init, conditions/unless) cell by cell along random operation sequences.
The properties below are the seed's rules, checked on every cell.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ggufsm.spec import load_spec
from ggufsm.spec.guard import LifecycleGuard, lifecycle_guard
from ggufsm.spec.table import LAZY_INIT_STATE, guard_assignments

SPEC = load_spec()
REFUSALS = {"InvalidState", "ModelNotLoaded"}
ERROR_LANDINGS = {"RecoverableError", "ContinuationReady"}


def every_cell_assignment():
    for state in SPEC.states:
        for operation in SPEC.operations:
            for guards in guard_assignments(SPEC.guards_for(state, operation)):
                yield state, operation, guards


ALL = list(every_cell_assignment())

guard_values = st.fixed_dictionaries({name: st.booleans() for name in SPEC.guards})
steps = st.lists(
    st.tuples(st.sampled_from(list(SPEC.operations)), guard_values, st.booleans()), min_size=1, max_size=40
)


# ─── the machine against the table ───────────────────────────────────────────


@settings(max_examples=300, deadline=None)
@given(start=st.sampled_from(list(SPEC.states)), walk=steps)
def test_the_machine_and_the_table_agree_along_random_walks(start, walk):
    guard = lifecycle_guard()
    state = start
    for operation, guards, stop_in_transient in walk:
        from_machine = guard.branch(state, operation, guards)
        from_table = SPEC.branch(state, operation, guards)
        assert from_machine == from_table, (state, operation, guards)
        outcome = from_table.outcome
        # Sometimes look at the handle while the operation runs, so the walk
        # also exercises the transient states' cells (every call there waits).
        state = outcome.via if outcome.via and stop_in_transient else outcome.to


def test_the_machine_answers_every_cell_like_the_table():
    guard = LifecycleGuard(SPEC)
    for state, operation, guards in ALL:
        assert guard.branch(state, operation, guards) == SPEC.branch(state, operation, guards)


def test_the_machine_has_one_transition_per_branch():
    guard = lifecycle_guard()
    transitions = [t for event in guard.machine.events.values() for ts in event.transitions.values() for t in ts]
    assert len(transitions) == sum(1 for _ in SPEC.all_branches())
    assert set(guard.machine.states) == set(SPEC.states)


def test_the_machine_names_missing_guards_like_the_table():
    with pytest.raises(KeyError, match="prompt_fits"):
        lifecycle_guard().outcome("Ready", "generate", {"input_valid": True, "sampling_valid": True, "cancelled": False})


# ─── the rules the table claims ──────────────────────────────────────────────


@pytest.mark.parametrize("state", SPEC.stable_states)
def test_every_stable_cell_answers_every_guard_assignment(state):
    for operation in SPEC.operations:
        for guards in guard_assignments(SPEC.guards):
            assert SPEC.outcome(state, operation, guards).to in SPEC.states


def test_queries_never_change_state_or_fail():
    for state, operation, guards in ALL:
        if SPEC.operations[operation].is_query:
            outcome = SPEC.outcome(state, operation, guards)
            assert (outcome.to, outcome.error, outcome.via) == (state, None, None)


def test_errors_that_move_land_in_recoverable_error_or_continuation_ready():
    # Measured from where the operation really starts: a lazy one starts in Initialized.
    for branch in SPEC.all_branches():
        outcome = branch.outcome
        start = LAZY_INIT_STATE if outcome.lazy_init else branch.state
        if outcome.error and outcome.to != start:
            assert outcome.to in ERROR_LANDINGS, branch.source


def test_only_cancelled_lands_in_continuation_ready_with_an_error():
    for branch in SPEC.all_branches():
        if branch.outcome.error and branch.outcome.to == "ContinuationReady" and branch.state != "ContinuationReady":
            assert branch.outcome.error == "Cancelled", branch.source


def test_every_way_into_recoverable_error_records_an_error():
    for branch in SPEC.all_branches():
        if branch.outcome.to == "RecoverableError" and branch.state != "RecoverableError":
            assert branch.outcome.error, branch.source


def test_refused_operations_change_nothing():
    for branch in SPEC.all_branches():
        outcome = branch.outcome
        if outcome.error in REFUSALS:
            start = LAZY_INIT_STATE if outcome.lazy_init else branch.state
            assert outcome.to == start and outcome.via is None, branch.source


def test_free_ends_in_freed_or_where_it_was_and_never_fails():
    for branch in (b for b in SPEC.all_branches() if b.operation == "free"):
        assert branch.outcome.error is None and not branch.outcome.lazy_init, branch.source
        assert branch.outcome.to in {"Freed", branch.state}, branch.source


def test_generation_without_a_model_is_model_not_loaded():
    for state in SPEC.stable_states:
        required, optional = SPEC.resident(state)
        if "model" in required | optional:
            continue
        for operation in ("generate", "generate_next_token", "replace_model"):
            for branch in SPEC.branches(state, operation):
                assert branch.outcome.error == "ModelNotLoaded", branch.source


def test_load_model_is_refused_where_a_model_is_resident():
    for state in SPEC.stable_states:
        if "model" in SPEC.resident(state)[0]:
            assert SPEC.outcome(state, "load_model").error == "InvalidState"
    assert SPEC.outcome("RecoverableError", "load_model", {"model_resident": True}).error == "InvalidState"


def test_a_successful_load_or_replace_ends_ready_through_loading():
    for branch in SPEC.all_branches():
        outcome = branch.outcome
        if branch.operation in ("load_model", "replace_model") and outcome.error is None and not outcome.serialized:
            assert (branch.outcome.to, branch.outcome.via) == ("Ready", "Loading"), branch.source


def test_a_failed_load_or_replace_installs_nothing_new():
    # Transactional: a failure while validating ends in RecoverableError, never Ready.
    for branch in SPEC.all_branches():
        if branch.operation in ("load_model", "replace_model") and branch.outcome.via == "Loading" and branch.outcome.error:
            assert branch.outcome.to == "RecoverableError", branch.source


def test_a_rejected_request_never_enters_generating():
    # Generating holds a request; input, sampling and context are checked
    # before one exists, so those rejections happen outside it.
    for branch in SPEC.all_branches():
        if branch.outcome.error in {"InvalidInput", "InvalidSampling", "ContextOverflow"}:
            assert branch.outcome.via is None, branch.source


def test_a_context_rejected_request_leaves_no_open_request():
    for branch in SPEC.all_branches():
        if branch.outcome.error == "ContextOverflow":
            required, optional = SPEC.resident(branch.outcome.to)
            assert "request" not in required | optional, branch.source


def test_lazy_init_only_happens_in_uninitialized_and_for_most_operations():
    lazy_cells = {(b.state, b.operation) for b in SPEC.all_branches() if b.outcome.lazy_init}
    assert {state for state, _ in lazy_cells} == {SPEC.initial_state}
    commands = {op for op in SPEC.commands if SPEC.operations[op].kind == "command"}
    assert len({op for _, op in lazy_cells}) > len(commands) / 2


def test_every_command_waits_in_a_transient_state_and_nowhere_else():
    for branch in SPEC.all_branches():
        operation = SPEC.operations[branch.operation]
        in_transient = SPEC.states[branch.state].transient
        assert branch.outcome.serialized == (in_transient and operation.kind == "command"), branch.source


def test_transient_states_are_only_entered_via():
    for branch in SPEC.all_branches():
        if branch.outcome.to != branch.state:
            assert not SPEC.states[branch.outcome.to].transient, branch.source



def test_the_machine_decides_on_partial_guards_like_the_table():
    guard = lifecycle_guard()
    for state, operation, guards in ALL:
        for dropped in guards:
            partial = {name: value for name, value in guards.items() if name != dropped}
            try:
                expected = SPEC.branch(state, operation, partial)
            except KeyError:
                with pytest.raises(KeyError, match=dropped):
                    guard.branch(state, operation, partial)
            else:
                assert guard.branch(state, operation, partial) == expected
