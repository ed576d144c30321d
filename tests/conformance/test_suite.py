"""The suite, generated from the table, run against the hand-written toy runtime and its broken variants."""

from __future__ import annotations

import dataclasses
import json

import toy_runtime

from ggufsm.conformance.adapter import InProcessImplementation, open_implementation
from ggufsm.conformance.plan.behaviours import BEHAVIOUR_RULES
from ggufsm.conformance.plan.cases import CallWhileRunning, plan_suite
from ggufsm.conformance.protocol import schema_problems
from ggufsm.conformance.run.runner import FAIL, NOT_SUPPORTED, PASS, XFAIL, XPASS, run_suite
from ggufsm.spec import load_spec

WALKS = 30


def in_process(factory_name: str) -> InProcessImplementation:
    return InProcessImplementation(getattr(toy_runtime, factory_name), label=f"toy:{factory_name}")


def by_id(run) -> dict:
    return {result.id: result for result in run.results}


def table_transitions(spec) -> set[tuple]:
    """Every (from, operation, to, error) the table defines, transient states included."""
    transitions = set()
    for branch in spec.all_branches():
        outcome = branch.outcome
        transitions.add((branch.state, branch.operation, outcome.to, outcome.error))
    return transitions


def test_the_suite_has_one_case_per_branch_of_every_cell(toy_inputs):
    spec = load_spec()
    plans, unreachable = plan_suite(spec, toy_inputs)
    branches = list(spec.all_branches())
    assert unreachable == []
    assert len([plan for plan in plans if not plan.variant]) == len(branches)
    assert {plan.rule for plan in plans} == {branch.source for branch in branches}
    assert len({plan.id for plan in plans}) == len(plans)
    assert {(state, op) for state in spec.states for op in spec.operations} == {(p.state, p.op) for p in plans}


def test_the_cases_exercise_every_transition_of_the_table(toy_inputs):
    spec = load_spec()
    plans, _ = plan_suite(spec, toy_inputs)
    exercised = {tuple(transition) for plan in plans for transition in plan.transitions}
    assert table_transitions(spec) <= exercised


def test_paths_are_shortest_and_configure_the_runtime_explicitly(toy_inputs):
    spec = load_spec()
    plans = {plan.id: plan for plan in plan_suite(spec, toy_inputs)[0]}
    assert [step.action.op for step in plans["Ready.free"].path] == ["init_runtime", "load_model"]
    assert [step.action.op for step in plans["Uninitialized.free"].path] == []
    to_error_with_model = plans["RecoverableError.reset[model_resident=true]"].path
    assert len(to_error_with_model) == 3 and to_error_with_model[-1].expected.error is not None
    assert all(plan.path[0].action.op == "init_runtime" for plan in plans.values() if plan.path)


def test_cases_a_cancel_must_land_in_run_a_generate_that_asks_for_the_whole_cancel_context(toy_inputs):
    spec = load_spec()
    inputs = dataclasses.replace(toy_inputs, cancel_n_ctx=4 * toy_inputs.n_ctx)
    plans = plan_suite(spec, inputs)[0]
    cancel_plans = [plan for plan in plans if dict(plan.conditions).get("cancelled") or plan.id == "Generating.cancel"]
    assert len(cancel_plans) >= 4
    for plan in cancel_plans:
        generate = plan.concurrency.running if isinstance(plan.concurrency, CallWhileRunning) else plan.call
        assert plan.path[0].action.args["n_ctx"] == inputs.cancel_n_ctx, plan.id
        assert generate.action.args["max_tokens"] == inputs.cancel_n_ctx, plan.id
    others = [plan for plan in plans if plan not in cancel_plans and plan.path and plan.path[0].action.op == "init_runtime"]
    assert others and {plan.path[0].action.args["n_ctx"] for plan in others} == {toy_inputs.n_ctx}
    # the prompt a cancel case overflows its context with is longer than that context
    assert inputs.cancel_inputs().long_prompt.count(" and") >= inputs.cancel_n_ctx


def test_without_an_operation_its_cells_are_not_supported_and_paths_avoid_it(toy_inputs):
    spec = load_spec()
    operations = set(spec.operations) - {"init_runtime"}
    plans, unreachable = plan_suite(spec, toy_inputs, operations)
    assert unreachable == []   # lazy initialisation reaches every state without init_runtime
    assert all(step.action.op != "init_runtime" for plan in plans for step in plan.path)


def test_a_correct_implementation_passes_every_case_in_process(toy_inputs):
    run = run_suite(in_process("make_adapter"), toy_inputs, walk_examples=WALKS)
    failures = [f"{r.id}: {r.message}" for r in run.results if r.status != PASS]
    assert failures == []
    plans = plan_suite(load_spec(), toy_inputs)[0]
    assert run.ok and len(run.results) == len(plans) + len(BEHAVIOUR_RULES) + 1


def test_a_correct_implementation_passes_every_case_over_the_protocol(toy_on_child_path, toy_inputs):
    with open_implementation("python:toy_runtime:make_adapter") as implementation:
        run = run_suite(implementation, toy_inputs, walk_examples=WALKS)
    assert [f"{r.id}: {r.message}" for r in run.results if r.status != PASS] == []


def test_a_reset_that_keeps_the_request_is_caught_naming_the_rule_and_the_shrunk_sequence(toy_inputs):
    run = run_suite(in_process("make_reset_keeps_request"), toy_inputs, walk_examples=WALKS)
    results = by_id(run)
    assert not run.ok
    cell = results["ContinuationReady.reset"]
    assert cell.status == FAIL and "cells.ContinuationReady.reset" in cell.message and "holds request" in cell.message
    walk = results["walk.table_oracle"]
    assert walk.status == FAIL
    assert "cells.ContinuationReady.reset" in walk.message
    sequence = walk.message.split("minimal sequence from a fresh runtime")[1].splitlines()[1:]
    requests = [json.loads(line) for line in sequence if line.startswith("{")]
    assert [request["op"] for request in requests] == ["load_model", "generate", "reset"]
    assert all(schema_problems(request, "request") == [] for request in requests)
    assert results["behaviour.reset_equals_fresh"].status == FAIL


def test_a_runtime_reporting_ready_after_a_failed_load_is_caught(toy_inputs):
    run = run_suite(in_process("make_ready_after_failed_load"), toy_inputs, walk_examples=WALKS)
    results = by_id(run)
    failed = results["Initialized.load_model[model_readable=false]"]
    assert failed.status == FAIL
    assert "cells.Initialized.load_model.cases[0]" in failed.message and "state_after=Ready" in failed.message
    assert results["walk.table_oracle"].status == FAIL
    assert "minimal sequence" in results["walk.table_oracle"].message
    assert results["Initialized.load_model[model_readable=true,model_well_formed=true,model_supported=true]"].status == PASS


def test_behaviour_cases_catch_a_bug_in_a_runtime_that_reports_no_state(toy_inputs):
    run = run_suite(in_process("make_silent_reset_keeps_request"), toy_inputs, walk_examples=0,
                    case_globs=["behaviour.*", "ContinuationReady.reset"])
    results = by_id(run)
    assert results["ContinuationReady.reset"].status == PASS   # nothing observable through the table alone
    assert results["behaviour.reset_equals_fresh"].status == FAIL
    assert "InvalidState" in results["behaviour.reset_equals_fresh"].message


def test_an_operation_the_implementation_lacks_is_never_a_pass(toy_inputs):
    run = run_suite(in_process("make_without_replace"), toy_inputs, walk_examples=0, case_globs=["*replace*"])
    statuses = {result.id: result.status for result in run.results}
    assert statuses and set(statuses.values()) == {NOT_SUPPORTED}
    assert "behaviour.failed_replace_keeps_output" in statuses
    assert not run.ok


def test_expected_failures_are_xfail_and_ones_that_now_pass_are_reported_as_xpass(toy_inputs):
    run = run_suite(in_process("make_reset_keeps_request"), toy_inputs, walk_examples=0,
                    case_globs=["ContinuationReady.reset", "Ready.reset", "behaviour.reset*"],
                    expect_fail=["*ContinuationReady.reset", "Ready.reset", "behaviour.reset_equals_fresh"])
    assert {r.id: r.status for r in run.results} == {"ContinuationReady.reset": XFAIL, "Ready.reset": XPASS,
                                                     "behaviour.reset_equals_fresh": XFAIL}
    assert run.ok


def test_a_crashing_implementation_fails_the_case_with_its_signal_and_the_run_goes_on(toy_on_child_path, toy_inputs):
    with open_implementation("python:toy_runtime:make_aborts_on_free") as implementation:
        run = run_suite(implementation, toy_inputs, walk_examples=0, case_globs=["Ready.*", "Initialized.free"])
    results = by_id(run)
    assert results["Ready.free"].status == FAIL and results["Ready.free"].signal == 6
    assert results["Initialized.free"].signal == 6
    assert results["Ready.generate[input_valid=true,sampling_valid=true,prompt_fits=true,model_intact=true,logits_finite=true,"
                   "cancelled=false]"].status == PASS
    assert sum(result.status == PASS for result in run.results) > 10


def test_a_generate_that_reports_length_when_the_context_filled_is_caught_by_its_finish_reason(toy_inputs):
    run = run_suite(in_process("make_length_when_the_context_fills"), toy_inputs, walk_examples=0,
                    case_globs=["ContinuationReady.generate_next_token*"])
    results = by_id(run)
    failed = results["ContinuationReady.generate_next_token[context_left=false]"]
    assert failed.status == FAIL
    assert "finish_reason context" in failed.message and "'length'" in failed.message
    assert results["ContinuationReady.generate_next_token[context_left=true,model_intact=true,logits_finite=true]"].status == PASS


def test_a_failed_replace_that_drops_the_model_is_caught_where_the_model_should_stay(toy_inputs):
    run = run_suite(in_process("make_failed_replace_drops_the_model"), toy_inputs, walk_examples=0,
                    case_globs=["Ready.replace_model*", "Initialized.load_model*"])
    results = by_id(run)
    failed = results["Ready.replace_model[model_readable=false]"]
    assert failed.status == FAIL and "missing kv_cache, logits, model, scratch, tokenizer" in failed.message
    assert results["Initialized.load_model[model_readable=false]"].status == PASS   # there was no model to keep
