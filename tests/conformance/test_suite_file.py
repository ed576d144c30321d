"""The suite as data (conformance/suite.json): what the table plans now, in its schema, complete
enough that the plans the runner executes read back from it, and naming only the table's names."""

from __future__ import annotations

import json

import jsonschema
import pytest

from ggufsm.conformance.inputs import placeholder_inputs
from ggufsm.conformance.plan.cases import Trigger, plan_suite
from ggufsm.conformance.plan.suite_file import (
    REGENERATE,
    SCHEMA_PATH,
    SUITE_PATH,
    plans_from_document,
    read_document,
    render,
    suite_document,
)
from ggufsm.spec import load_spec


@pytest.fixture(scope="module")
def document():
    return read_document(SUITE_PATH)


def test_the_committed_suite_is_what_the_table_plans_now():
    fresh = render(suite_document(load_spec(), placeholder_inputs()))
    assert SUITE_PATH.read_text(encoding="utf-8") == fresh, f"conformance/suite.json is stale: run `{REGENERATE}`"


def test_the_suite_follows_its_schema(document):
    schema = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator.check_schema(schema)
    errors = [f"{'/'.join(map(str, error.absolute_path))}: {error.message}"
              for error in jsonschema.Draft202012Validator(schema).iter_errors(document)]
    assert errors == []
    assert schema["$defs"]["trigger"]["enum"] == [trigger.value for trigger in Trigger]


def test_the_plans_the_runner_executes_read_back_from_the_file(document):
    assert plans_from_document(document) == plan_suite(load_spec(), placeholder_inputs())[0]


def test_one_main_case_per_branch_each_naming_its_rule_and_variants_beside_it(document):
    spec = load_spec()
    cases = document["cases"]
    main = [case for case in cases if not case["variant"]]
    assert [case["rule"] for case in main] == [branch.source for branch in spec.all_branches()]
    assert len({case["id"] for case in cases}) == len(cases)
    assert all(case["id"].endswith("@" + case["variant"]) for case in cases if case["variant"])
    assert document["spec_version"] == spec.version


def test_every_case_states_exactly_what_its_call_leaves(document):
    spec = load_spec()
    for case in document["cases"]:
        expect = case["call"]["expect"]
        if spec.states[case["state"]].transient and case["concurrency"]["call_waits"] is False:
            assert expect["after"] is None, case["id"]   # answered in a transient state: no effects judged
            continue
        after = expect["after"]
        required = set(spec.states[expect["state"]].required)
        assert required <= set(after["resident"]) <= required | set(spec.states[expect["state"]].optional), case["id"]
        assert ("last_error" in after["resident"]) == (after["last_error"] is not None), case["id"]
        assert ("model" in after["resident"]) == (after["model"] is not None) == expect["model_resident"], case["id"]
        assert ("request" in after["resident"]) == after["request"], case["id"]
        assert set(expect["effects"]) <= set(spec.effect_fields), case["id"]


def test_every_transient_cell_and_every_cancel_says_how_its_calls_overlap(document):
    spec = load_spec()
    for case in document["cases"]:
        concurrency = case["concurrency"]
        if spec.states[case["state"]].transient:
            assert concurrency["kind"] == "call_while_running", case["id"]
        elif case["conditions"].get("cancelled") and not case["variant"]:
            assert concurrency["kind"] == "cancel_while_call_runs", case["id"]
        else:
            assert concurrency is None, case["id"]


def test_every_name_in_the_file_is_one_of_the_table(document):
    spec = load_spec()
    steps = [step for case in document["cases"] for step in (*case["path"], case["call"], *_concurrent(case))]
    assert {case["state"] for case in document["cases"]} <= set(spec.states)
    assert {step["op"] for step in steps} <= set(spec.operations)
    assert {step["from"] for step in steps} | {step["expect"]["state"] for step in steps} <= set(spec.states)
    assert {step["expect"]["error"] for step in steps} - {None} <= set(spec.errors)
    assert {step["expect"]["finish_reason"] for step in steps} - {None} <= set(spec.finish_reasons)
    resident = {datum for step in steps for data in step["expect"]["resident"].values() for datum in data}
    assert resident <= set(spec.resident_data)
    assert {guard for case in document["cases"] for guard in case["conditions"]} <= set(spec.guards)
    assert set(document["recipes"]) == set(spec.guards)


def test_model_files_and_the_long_prompt_are_placeholders_the_file_explains(document):
    placeholders = set(document["inputs"]["placeholders"])
    used = {value for case in document["cases"] for step in (*case["path"], case["call"], *_concurrent(case))
            for value in step["args"].values() if isinstance(value, str) and value.startswith("<")}
    used |= {value for case in document["cases"] for step in (*case["path"], case["call"])
             for value in step["args"].values() if isinstance(value, str) and value.startswith("<")}
    used |= {f"<{case['runs_on']}>" for case in document["cases"] if case.get("runs_on")}   # stands for <model>
    assert used == placeholders


def _concurrent(case: dict) -> list[dict]:
    concurrency = case["concurrency"] or {}
    return [concurrency[key] for key in ("running", "cancel") if key in concurrency]
