"""The machine built from the table decides like the table, lazily, and the table keeps the rules it claims.

The runtime's transitions are fired on a ``transitions`` Machine built from
lifecycle.yaml (spec/guard.py). Here that machine is asked with given guard
values (``MachineOracle``) and held to ``Spec.outcome``, read from the table
directly, cell by cell and along random operation sequences; then the ways it
is lazy: which guards it asks, in which order, in which state. The properties
after that are the seed's rules, checked on every cell.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from transitions import MachineError

from ggufsm.spec import load_spec
from ggufsm.spec.errors import InvalidModel, InvalidSampling
from ggufsm.spec.guard import MachineOracle, StepKind, branch_walks_like, machine_oracle, machine_transitions
from ggufsm.spec.table import LAZY_INIT_STATE, guard_assignments

SPEC = load_spec()
REFUSALS = {"InvalidState", "ModelNotLoaded"}
ERROR_LANDINGS = {"RecoverableError", "ContinuationReady"}
LATE = {name for name, guard in SPEC.guards.items() if guard.while_running}


def every_cell_assignment():
    for state in SPEC.states:
        for operation in SPEC.operations:
            for guards in guard_assignments(SPEC.guards_for(state, operation)):
                yield state, operation, guards


ALL = list(every_cell_assignment())
# What the machine fires: commands and controls that do not wait behind a running operation.
FIRED = [(state, operation, guards) for state, operation, guards in ALL
         if not SPEC.operations[operation].is_query and not SPEC.branch(state, operation, guards).outcome.serialized]

guard_values = st.fixed_dictionaries({name: st.booleans() for name in SPEC.guards})
steps = st.lists(
    st.tuples(st.sampled_from(list(SPEC.commands)), guard_values), min_size=1, max_size=40
)


# ─── the machine against the table ───────────────────────────────────────────


def test_the_machine_ends_every_cell_where_the_table_says():
    oracle = MachineOracle(SPEC)
    for state, operation, guards in FIRED:
        walk = oracle.walk(state, operation, guards)
        assert branch_walks_like(SPEC.branch(state, operation, guards), walk), (state, operation, guards, walk)


@settings(max_examples=300, deadline=None)
@given(walk=steps)
def test_the_machine_and_the_table_agree_along_random_walks_from_the_initial_state(walk):
    oracle, state = machine_oracle(), SPEC.initial_state
    for operation, guards in walk:
        outcome = SPEC.outcome(state, operation, guards)
        path = oracle.walk(state, operation, guards)
        assert (path.to, path.error, path.via) == (outcome.to, outcome.error, outcome.via), (state, operation, guards)
        state = path.to


def test_transient_states_are_left_only_by_the_operation_that_entered_them_or_a_control():
    # A command arriving while another runs waits on the handle's lock: it is never fired in a transient state.
    for transition in machine_transitions(SPEC):
        if SPEC.states[transition["source"]].transient:
            operation = transition["trigger"]
            entered_by_it = any(b.outcome.via == transition["source"] for b in SPEC.all_branches() if b.operation == operation)
            assert entered_by_it or SPEC.operations[operation].kind == "control", transition


def test_a_command_is_never_fired_in_a_transient_state_it_did_not_enter():
    with pytest.raises(MachineError, match="generate from state Loading"):
        machine_oracle().walk("Loading", "generate", {})


def test_the_machine_registers_no_hook_its_lean_trigger_path_would_skip():
    assert machine_oracle().machine._hooks_the_lean_path_skips() == []


def test_the_lean_trigger_builds_no_event_data_and_checks_each_transitions_guards_in_the_tables_order(monkeypatch):
    """Every cell still ends where the table says with the library's EventData made unbuildable: the trigger hands
    each transition the model and the Decision, and each transition's guard checks are its conditions, in order."""
    import transitions.core

    def refused(*args, **kwargs):
        raise AssertionError("the lean trigger built an EventData")

    monkeypatch.setattr(transitions.core, "EventData", refused)
    oracle = machine_oracle()
    for state, operation, guards in FIRED:
        walk = oracle.walk(state, operation, guards)
        assert walk.to == SPEC.branch(state, operation, guards).outcome.to, (state, operation, guards)
    order = list(SPEC.guards)
    for event in oracle.machine.events.values():
        for transitions_from in event.transitions.values():
            for transition in transitions_from:
                names = [name for name, _ in transition.guard_checks]
                assert names == sorted(names, key=order.index)
                assert transition.guard_checks == tuple((c.func, c.target) for c in transition.conditions)


def test_queries_are_no_events_of_the_machine():
    assert not set(SPEC.queries) & set(machine_oracle().machine.events)


def test_a_lazy_init_is_a_step_to_initialized_then_the_initialized_cell():
    walk = machine_oracle().walk(SPEC.initial_state, "generate", {})
    assert [step.kind for step in walk.steps] == [StepKind.LAZY_INIT, StepKind.FINISH]
    assert walk.steps[0].to == LAZY_INIT_STATE and (walk.to, walk.error) == (LAZY_INIT_STATE, "ModelNotLoaded")


def test_an_operation_via_a_transient_state_enters_it_then_leaves_it():
    walk = machine_oracle().walk("Ready", "generate", {"input_valid": True, "sampling_valid": True,
                                                       "prompt_fits": True, "model_intact": True, "logits_finite": True,
                                                       "cancelled": True})
    assert [(step.kind, step.source, step.to) for step in walk.steps] == [
        (StepKind.ENTER, "Ready", "Generating"), (StepKind.FINISH, "Generating", "ContinuationReady")]
    assert walk.error == "Cancelled"


def test_the_machine_names_missing_guards_like_the_table():
    with pytest.raises(KeyError, match="prompt_fits"):
        machine_oracle().walk("Ready", "generate", {"input_valid": True, "sampling_valid": True, "cancelled": False})


def test_the_machine_decides_on_partial_guards_like_the_table():
    oracle = machine_oracle()
    for state, operation, guards in FIRED:
        for dropped in guards:
            partial = {name: value for name, value in guards.items() if name != dropped}
            try:
                expected = SPEC.branch(state, operation, partial)
            except KeyError:
                with pytest.raises(KeyError, match=dropped):
                    oracle.walk(state, operation, partial)
            else:
                assert branch_walks_like(expected, oracle.walk(state, operation, partial)), (state, operation, partial)


# ─── lazy guards ─────────────────────────────────────────────────────────────


def test_each_guard_is_computed_at_most_once_per_operation():
    oracle = machine_oracle()
    for state, operation, guards in FIRED:
        asked = [name for name, _ in oracle.walk(state, operation, guards).asked]
        assert len(asked) == len(set(asked)), (state, operation, guards, asked)


def test_guards_known_while_running_are_asked_only_in_the_transient_state():
    oracle = machine_oracle()
    for state, operation, guards in FIRED:
        for name, asked_in in oracle.walk(state, operation, guards).asked:
            assert SPEC.states[asked_in].transient == (name in LATE), (state, operation, name, asked_in)


def test_a_guard_is_asked_only_after_the_guards_it_needs_held():
    oracle = machine_oracle()
    for state, operation, guards in FIRED:
        walk = oracle.walk(state, operation, guards)
        asked = [name for name, _ in walk.asked]
        for position, name in enumerate(asked):
            for need in SPEC.guards[name].needs:
                assert need in asked[:position] and walk.decision.values[need], (state, operation, name)


def test_a_refused_load_never_reaches_the_guards_that_read_the_file():
    walk = machine_oracle().walk("RecoverableError", "load_model", {"model_resident": True})
    assert walk.error == "InvalidState" and [name for name, _ in walk.asked] == ["model_resident"]


def test_a_malformed_prompt_is_never_measured():
    walk = machine_oracle().walk("Ready", "generate", {"input_valid": False})
    assert walk.error == "InvalidInput" and [name for name, _ in walk.asked] == ["input_valid"]


def test_every_transition_checks_its_guards_in_the_tables_order():
    order = list(SPEC.guards)
    machine = machine_oracle().machine
    for event in machine.events.values():
        for transitions in event.transitions.values():
            for transition in transitions:
                names = [condition.func for condition in transition.conditions]
                assert names == sorted(names, key=order.index)


# ─── named errors inside guards ──────────────────────────────────────────────


def test_a_named_error_raised_inside_a_guard_makes_it_false_and_the_tables_outcome_follows():
    oracle = machine_oracle()
    failing = InvalidSampling("temperature=-1 is out of range")
    walk = oracle.walk("Ready", "generate", {"input_valid": True, "sampling_valid": failing})
    assert (walk.to, walk.error) == (SPEC.outcome("Ready", "generate", {"input_valid": True, "sampling_valid": False}).to,
                                     "InvalidSampling")
    assert walk.decision.reasons == [failing.message] and walk.decision.raised == {"sampling_valid": failing}


def test_a_guards_raised_error_and_reasons_stay_on_its_own_decision():
    # A Decision starts with shared empty mappings and takes its own at its first reason or raised error.
    oracle = machine_oracle()
    failing = InvalidSampling("temperature=-1 is out of range")
    refused = oracle.walk("Ready", "generate", {"input_valid": True, "sampling_valid": failing})
    clean = oracle.walk("Ready", "generate", {"input_valid": True, "sampling_valid": True, "prompt_fits": True,
                                              "cancelled": False, "model_intact": True, "logits_finite": True})
    assert refused.decision.raised == {"sampling_valid": failing}
    assert refused.decision.reasons_of == {"sampling_valid": [failing.message]}
    assert not clean.decision.raised and not clean.decision.reasons_of and not clean.decision.reasons


def test_a_named_error_raised_while_running_takes_the_exit_the_table_gives_a_false_guard():
    walk = machine_oracle().walk("Freed", "load_model", {"model_readable": True, "model_well_formed": InvalidModel("bad magic")})
    assert (walk.via, walk.to, walk.error) == ("Loading", "RecoverableError", "InvalidModel")


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
