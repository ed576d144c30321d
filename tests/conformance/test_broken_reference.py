"""The suite catches real bugs: deliberately broken variants of the REAL reference runtime
(tests/conformance/broken_reference.py) fail with the table rule they break and, from the random
walk, the shrunk sequence of protocol requests that reproduces the bug from a fresh runtime."""

from __future__ import annotations

import json
import signal
import subprocess
import sys

import broken_reference
import pytest

from ggufsm.conformance.adapter import InProcessImplementation, open_implementation
from ggufsm.conformance.protocol import schema_problems
from ggufsm.conformance.run.runner import FAIL, PASS, run_suite


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    from ggufsm.conformance.inputs import prepare_inputs

    return prepare_inputs(tmp_path_factory.mktemp("suite-inputs"))


def run_broken(factory_name: str, inputs, globs: list[str]) -> dict:
    implementation = InProcessImplementation(getattr(broken_reference, factory_name), label=factory_name)
    run = run_suite(implementation, inputs, case_globs=globs)
    assert not run.ok
    return {result.id: result for result in run.results}


def shrunk_sequence(message: str) -> list[dict]:
    """The protocol requests a failing walk prints after its 'minimal sequence' line."""
    lines = message.split("minimal sequence from a fresh runtime")[1].splitlines()[1:]
    return [json.loads(line.split("   #")[0]) for line in lines if line.startswith("{")]


def test_a_reset_that_keeps_the_request_is_caught_by_its_cells_behaviour_and_walk(inputs):
    results = run_broken("make_reset_keeps_request", inputs, ["*.reset*", "behaviour.reset*", "walk.*"])
    cell = results["ContinuationReady.reset"]
    assert cell.status == FAIL
    assert cell.message.startswith("cells.ContinuationReady.reset:")
    assert "expected state Ready after success, the implementation reports ContinuationReady" in cell.message
    behaviour = results["behaviour.reset_equals_fresh"]
    assert behaviour.status == FAIL and "should fail with InvalidState, got ok" in behaviour.message
    walk = results["walk.table_oracle"]
    assert walk.status == FAIL and walk.message.startswith("cells.") and ".reset" in walk.message.splitlines()[0]
    requests = shrunk_sequence(walk.message)
    assert 1 < len(requests) <= 3 and requests[-1]["op"] == "reset"
    assert all(schema_problems(request, "request") == [] for request in requests)
    assert results["Ready.reset"].status == PASS   # the bug shows only where there is something to reset


def test_ready_after_a_failed_load_is_caught_and_shrinks_to_the_single_failing_load(inputs):
    results = run_broken("make_ready_after_failed_load", inputs, ["Initialized.load_model*", "walk.*"])
    missing = results["Initialized.load_model[model_readable=false]"]
    assert missing.status == FAIL
    assert missing.message.startswith("cells.Initialized.load_model.cases[0]:")
    # The failed load's own reply carries the state the machine left (RecoverableError); the state the
    # mutant then writes by hand past the machine is what the state query answers.
    assert "expected state RecoverableError, the state query answers ok [state Ready]" in missing.message
    assert results["Initialized.load_model[model_readable=true,model_well_formed=false]"].status == FAIL
    assert results["Initialized.load_model[model_readable=true,model_well_formed=true,model_supported=true]"].status == PASS
    walk = results["walk.table_oracle"]
    assert walk.status == FAIL and "load_model" in walk.message.splitlines()[0]
    requests = shrunk_sequence(walk.message)
    assert [request["op"] for request in requests] == ["load_model"]
    assert requests[0]["args"]["path"] in (inputs.missing_model, inputs.corrupt_model, inputs.unsupported_model)


def test_the_reset_bug_is_caught_by_behaviour_alone_when_the_runtime_reports_no_state(inputs):
    results = run_broken("make_silent_reset_keeps_request", inputs, ["behaviour.*", "ContinuationReady.reset"])
    assert results["ContinuationReady.reset"].status == PASS   # without a state or diagnostics nothing is visible
    assert results["behaviour.reset_equals_fresh"].status == FAIL
    assert [rid for rid, result in results.items() if result.status == FAIL] == ["behaviour.reset_equals_fresh"]


def whole(message: str) -> str:
    """A case's message for an assertion, every line of it: what a refused call answered comes first,
    and pytest would shorten a message it shows as part of the failed expression."""
    return "\n" + message


def test_memory_that_free_never_returns_is_caught_in_the_runtime_process(toy_on_child_path, inputs):
    with open_implementation("python:broken_reference:make_leaks_on_free") as implementation:
        run = run_suite(implementation, inputs, case_globs=["behaviour.free_returns_memory"])
    [result] = run.results
    # Once seen failing with the mutant's first load refused (an internal error, the state left Initialized):
    # the child imported the worktree's sources while `pip install -e .` was still rebuilding the core
    # they call. The whole message says which call was refused and why.
    assert result.status == FAIL, whole(result.message)
    assert result.message.startswith("behaviour.free_returns_memory: memory grows by"), whole(result.message)
    with open_implementation("python:ggufsm.conformance.adapters.reference:make_adapter") as implementation:
        [reference] = run_suite(implementation, inputs, case_globs=["behaviour.free_returns_memory"]).results
    assert reference.status == PASS, whole(reference.message)


@pytest.mark.parametrize("isolate", [False, True], ids=["in-process", "over-the-protocol"])
def test_a_leak_of_five_percent_of_a_loads_footprint_per_cycle_is_caught_on_the_tiny_model(toy_on_child_path, inputs,
                                                                                          isolate):
    impl = "python:broken_reference:make_leaks_five_percent"
    with open_implementation(impl, isolate=isolate) as implementation:
        run = run_suite(implementation, inputs, case_globs=["behaviour.free_returns_memory"])
    [result] = run.results
    assert result.status == FAIL and "of one load's footprint" in result.message


def test_garbage_the_collector_has_yet_to_free_is_no_leak(toy_on_child_path, inputs):
    """Memory a free left to Python's cyclic collector is returned by a collection: the reading counts
    what is in use (collected, then trimmed), as llama-cpp-python's `Llama` needs (its sampler's closure
    holds it in a cycle; before, its verdict depended on where the collector's runs fell)."""
    with open_implementation("python:broken_reference:make_freed_by_the_collector") as implementation:
        [result] = run_suite(implementation, inputs, case_globs=["behaviour.free_returns_memory"]).results
    assert result.status == PASS, whole(result.message)


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ggufsm", "conformance", "run", *args],
                          capture_output=True, text=True)


def test_over_the_protocol_the_broken_reference_exits_one_unless_its_failures_are_expected(toy_on_child_path,
                                                                                          tmp_path):
    broken = ["--impl", "python:broken_reference:make_reset_keeps_request", "--walk-examples", "0",
              "--cases", "ContinuationReady.reset", "--cases", "Ready.reset", "--cases", "behaviour.reset*"]
    failing = run_cli(*broken)
    assert failing.returncode == 1
    assert "cells.ContinuationReady.reset" in failing.stderr and "-> FAILED" in failing.stdout

    expect_fail = tmp_path / "expect-fail.txt"
    expect_fail.write_text("ContinuationReady.reset   # keeps the request\nbehaviour.reset_equals_fresh\n"
                           "Ready.reset               # listed, but passes: reported as xpass\n")
    tolerated = run_cli(*broken, "--expect-fail", str(expect_fail), "--report-dir", str(tmp_path / "report"))
    assert tolerated.returncode == 0, tolerated.stdout + tolerated.stderr
    assert "2 xfail, 1 xpass" in tolerated.stdout and "-> OK" in tolerated.stdout
    records = json.loads((tmp_path / "report" / "results.json").read_text())[0]["cases"]
    assert {case["id"]: case["status"] for case in records}["Ready.reset"] == "xpass"


FILE_CHANGE_CASES = ["*model_intact=false*"]


def test_a_runtime_that_never_looks_at_its_file_again_fails_every_file_change_case(inputs):
    results = run_broken("make_ignores_file_changes", inputs, FILE_CHANGE_CASES)
    assert len(results) == 8 and all(result.status == FAIL for result in results.values())
    assert all("expected ModelUnavailable" in result.message for result in results.values())


def test_a_runtime_killed_by_a_changed_file_fails_those_cases_with_the_signal_and_the_run_goes_on(toy_on_child_path,
                                                                                                inputs):
    with open_implementation("python:broken_reference:make_dies_on_file_change") as implementation:
        run = run_suite(implementation, inputs, case_globs=[*FILE_CHANGE_CASES, "Ready.free"], walk_examples=0)
    results = {result.id: result for result in run.results}
    changed = [result for case_id, result in results.items() if "model_intact=false" in case_id]
    assert len(changed) == 8 and all(result.status == FAIL and result.signal == signal.SIGBUS for result in changed)
    assert results["Ready.free"].status == PASS   # the next case starts a new process


def test_a_generate_that_makes_more_than_max_tokens_is_caught_though_it_says_length(inputs):
    results = run_broken("make_one_token_past_max_tokens", inputs, ["Ready.generate[*"])
    past = results["Ready.generate[input_valid=true,sampling_valid=true,prompt_fits=true,model_intact=true,"
                   "logits_finite=true,cancelled=false]"]
    assert past.status == FAIL
    assert "+ operations.generate" in past.message
    assert "generate makes up to max_tokens=4 tokens, the reply carries 5" in past.message
