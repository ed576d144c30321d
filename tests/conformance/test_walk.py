"""The walk covers every (state, operation, guard values) the table allows, and the report says how much."""

from __future__ import annotations

import json

import toy_runtime

from ggufsm.conformance.adapter import InProcessImplementation
from ggufsm.conformance.plan.paths import Planner
from ggufsm.conformance.plan.walk_model import FILL_CONTEXT, route_to, walk_triples
from ggufsm.conformance.report import coverage, run_markdown
from ggufsm.conformance.run.runner import FAIL, PASS, run_suite
from ggufsm.spec import load_spec
from ggufsm.spec.names import Guard, Operation, State


def test_the_walk_must_take_every_branch_of_every_stable_state_but_those_on_a_file_of_their_own():
    """A walk shares the suite's files: a model file changed under one runtime, or the overflow model, are the
    cell cases' alone (WALK_KEEPS_NATURAL); every other branch of a stable state is the walk's to take."""
    spec = load_spec()
    stable = [branch for branch in spec.all_branches() if not spec.states[branch.state].transient]
    own_file = [branch.source for branch in stable if dict(branch.conditions).get(Guard.model_intact) is False
                or dict(branch.conditions).get(Guard.logits_finite) is False]
    assert len(own_file) == 8   # 4 cells, each a model_intact=false and a logits_finite=false branch
    assert walk_triples(spec, spec.operations) == [branch.source for branch in stable if branch.source not in own_file]


def test_an_implementation_without_cancel_is_not_asked_for_branches_a_cancel_decides():
    spec = load_spec()
    without_cancel = [op for op in spec.operations if op != Operation.cancel]
    needs_cancel = {branch.source for branch in spec.all_branches()
                    if any(guard == Guard.cancelled and value for guard, value in branch.conditions)}
    assert needs_cancel and not needs_cancel & set(walk_triples(spec, without_cancel))


def test_every_triple_has_a_route_and_one_needing_a_full_context_fills_it_first(toy_inputs):
    spec = load_spec()
    planner = Planner(spec, toy_inputs)
    branches = {branch.source: branch for branch in spec.all_branches()}
    routes = {source: route_to(spec, planner, branches[source]) for source in walk_triples(spec, spec.operations)}
    assert [source for source, route in routes.items() if route is None] == []
    full = [branch for branch in branches.values() if (Guard.context_left, False) in branch.conditions]
    assert {(branch.state, branch.operation) for branch in full} >= {
        (State.ContinuationReady, Operation.generate_next_token)}
    for branch in full:
        route = routes[branch.source]
        assert route is not None and route[-2] == (Operation.generate, FILL_CONTEXT), branch.source


def test_the_walk_takes_every_triple_and_the_report_shows_its_coverage(toy_inputs):
    spec = load_spec()
    implementation = InProcessImplementation(toy_runtime.make_adapter, "toy")
    run = run_suite(implementation, toy_inputs, walk_examples=3, case_globs=["walk.*"])
    [walk] = run.results
    assert walk.status == PASS, walk.message
    total = len(walk_triples(spec, spec.operations))
    assert walk.measures["taken"] == walk.measures["total"] == total
    assert f"walk triple coverage: {total}/{total}" in walk.notes
    assert coverage(run, spec)["walk triples"]["passing"] == total
    assert any(line.startswith("Walk triples:") for line in run_markdown(run, spec, None))


class GarbledTokens(toy_runtime.ToyAdapter):
    """Answers every generate with token_ids that are not a list: a reply the kit cannot read."""

    name = "toy-garbled-token-ids"

    def op_generate(self, *args, **kwargs) -> dict:
        return {**super().op_generate(*args, **kwargs), "token_ids": 7}


def test_a_walk_meeting_a_reply_it_cannot_read_fails_with_its_shrunk_sequence_and_the_replay_command(toy_inputs):
    run = run_suite(InProcessImplementation(GarbledTokens, GarbledTokens.name), toy_inputs, walk_examples=5,
                    case_globs=["walk.*"])
    [walk] = run.results
    assert walk.status == FAIL
    assert "the reply could not be judged: TypeError" in walk.message
    sequence = walk.message.split("minimal sequence from a fresh runtime")[1].splitlines()[1:]
    requests = [line for line in sequence if line.startswith("{")]
    assert [json.loads(line)["op"] for line in requests][-1] == Operation.generate
    assert len(requests) <= 3
    assert f"ggufsm conformance replay --impl {GarbledTokens.name} walk.jsonl" in walk.message
