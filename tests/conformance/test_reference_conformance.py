"""The whole suite against the reference runtime, in-process and over `ggufsm serve-stdio`: 100% pass."""

from __future__ import annotations

import shlex
import sys
import time

import pytest

from ggufsm.conformance.adapter import open_implementation
from ggufsm.conformance.runner import PASS, run_suite


REFERENCE = "python:ggufsm.conformance.adapters.reference:make_adapter"


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    from ggufsm.conformance.inputs import prepare_inputs

    return prepare_inputs(tmp_path_factory.mktemp("suite-inputs"))


def assert_all_pass(run) -> None:
    failures = [f"{result.id}: {result.status}: {result.message}" for result in run.results if result.status != PASS]
    assert failures == [], "\n".join(failures)


def test_the_reference_passes_every_case_in_process(inputs):
    started = time.perf_counter()
    with open_implementation(REFERENCE, isolate=False) as implementation:
        run = run_suite(implementation, inputs)
    assert_all_pass(run)
    print(f"{len(run.results)} cases in {time.perf_counter() - started:.1f} s (in process)")


def test_the_reference_passes_every_case_over_serve_stdio(inputs):
    started = time.perf_counter()
    # This interpreter's ggufsm, whatever `ggufsm` on PATH happens to be.
    with open_implementation(f"{shlex.quote(sys.executable)} -m ggufsm serve-stdio") as implementation:
        run = run_suite(implementation, inputs)
    assert_all_pass(run)
    print(f"{len(run.results)} cases in {time.perf_counter() - started:.1f} s (serve-stdio)")
