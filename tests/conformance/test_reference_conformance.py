"""The whole suite against the reference runtime, in-process and over `ggufsm serve-stdio`: 100% pass,
every cell, branch and transition of the table covered, the random walks included."""

from __future__ import annotations

import shlex
import sys
import time

import pytest

from ggufsm.conformance.adapter import open_implementation
from ggufsm.conformance.report import coverage
from ggufsm.conformance.run.runner import PASS, run_suite
from ggufsm.spec import load_spec

REFERENCE = "python:ggufsm.conformance.adapters.reference:make_adapter"
# This interpreter's ggufsm, whatever `ggufsm` on PATH happens to be.
SERVE_STDIO = f"{shlex.quote(sys.executable)} -m ggufsm serve-stdio"


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    from ggufsm.conformance.inputs import prepare_inputs

    return prepare_inputs(tmp_path_factory.mktemp("suite-inputs"))


def assert_conforms(run) -> None:
    failures = [f"{result.id}: {result.status}: {result.message}" for result in run.results if result.status != PASS]
    assert failures == [], "\n".join(failures)
    spec = load_spec()
    cells = [result for result in run.results if result.kind == "cell"]
    assert {result.rule for result in cells} == {branch.source for branch in spec.all_branches()}
    assert len(run.results) == len(cells) + sum(r.kind == "behaviour" for r in run.results) + 1
    assert [result.id for result in run.results if result.kind == "walk"] == ["walk.table_oracle"]
    measured = coverage(run, spec)
    for name in ("cells", "branches", "transitions", "walk triples"):
        assert measured[name]["passing"] == measured[name]["total"] > 0, name


@pytest.mark.parametrize("impl, isolate", [(REFERENCE, False), (SERVE_STDIO, True)], ids=["in-process", "serve-stdio"])
def test_the_reference_passes_every_case_and_covers_the_whole_table(impl, isolate, inputs):
    started = time.perf_counter()
    with open_implementation(impl, isolate=isolate) as implementation:
        run = run_suite(implementation, inputs)
    assert_conforms(run)
    print(f"{len(run.results)} cases in {time.perf_counter() - started:.1f} s ({impl})")
