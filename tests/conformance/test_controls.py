"""No false failure: correct implementations that take the freedoms the spec leaves open pass every
case (tests/conformance/controls.py names each freedom)."""

from __future__ import annotations

import controls
import pytest

from ggufsm.conformance.adapter import InProcessImplementation
from ggufsm.conformance.run.runner import PASS, run_suite

WALKS = 10


@pytest.mark.parametrize("control", controls.CONTROLS, ids=lambda control: control.name)
def test_an_implementation_taking_a_freedom_of_the_spec_passes_every_case(control, toy_inputs):
    run = run_suite(InProcessImplementation(control, control.name), toy_inputs, walk_examples=WALKS)
    assert [f"{result.id}: {result.message}" for result in run.results if result.status != PASS] == []
