"""Reports: one JSON record per case, JUnit XML a CI can read, a Markdown summary with coverage and a
comparison, and the state diagram coloured by result."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ElementTree

import pytest
import toy_runtime

from ggufsm.conformance.adapter import InProcessImplementation
from ggufsm.conformance.report import COLOURS, coverage, write_reports
from ggufsm.conformance.run.runner import FAIL, NOT_SUPPORTED, PASS, run_suite
from ggufsm.spec import load_spec


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    from toy_inputs import toy_suite_inputs

    inputs = toy_suite_inputs(tmp_path_factory.mktemp("inputs"))
    return [run_suite(InProcessImplementation(getattr(toy_runtime, name), label=name), inputs, walk_examples=5)
            for name in ("make_adapter", "make_ready_after_failed_load", "make_without_replace")]


def test_a_correct_implementation_covers_every_cell_branch_and_transition(runs):
    measured = coverage(runs[0], load_spec())
    for name in ("cells", "branches", "transitions"):
        assert measured[name]["with_a_case"] == measured[name]["passing"] == measured[name]["total"] > 0, name


def test_unsupported_operations_lower_coverage(runs):
    measured = coverage(runs[2], load_spec())
    assert measured["branches"]["with_a_case"] < measured["branches"]["total"]


def test_reports_hold_a_record_per_case_junit_a_summary_and_coloured_diagrams(runs, tmp_path):
    written = {path.name for path in write_reports(runs, tmp_path)}
    assert {"results.json", "junit.xml", "summary.md"} <= written
    records = json.loads((tmp_path / "results.json").read_text())
    assert [len(record["cases"]) for record in records] == [len(run.results) for run in runs]
    assert {case["status"] for case in records[1]["cases"]} == {PASS, FAIL}
    failed = next(case for case in records[1]["cases"] if case["id"] == "Initialized.load_model[model_readable=false]")
    assert failed["rule"] == "cells.Initialized.load_model.cases[0]" and failed["calls"]

    suites = ElementTree.parse(tmp_path / "junit.xml").getroot()
    assert [suite.get("name") for suite in suites] == [run.implementation for run in runs]
    assert int(suites[1].get("failures")) == runs[1].counts()[FAIL] > 0
    assert int(suites[2].get("skipped")) == runs[2].counts()[NOT_SUPPORTED] > 0

    summary = (tmp_path / "summary.md").read_text()
    assert "## Comparison" in summary and "Cases whose results differ" in summary
    assert "| branches |" in summary and "`cells.Initialized.load_model.cases[0]`" in summary

    good = (tmp_path / "toy-runtime.lifecycle.svg").read_text()
    broken = (tmp_path / "toy-ready-after-failed-load.lifecycle.svg").read_text()
    lacking = (tmp_path / "toy-without-replace.lifecycle.svg").read_text()
    assert COLOURS[PASS] in good and COLOURS[FAIL] not in good
    assert COLOURS[FAIL] in broken
    assert COLOURS[NOT_SUPPORTED] in lacking
