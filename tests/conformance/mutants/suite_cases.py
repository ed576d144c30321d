"""The conformance suite as pytest tests, one per case, against the reference runtime: mutmut's test command.

mutmut (3.x) records which tests reach each function of the mutated code,
then runs, for each mutant, only those tests, stopping at the first failure.
So each case of the suite (table cells, behaviours, the random walk) is one
test here, on the kit's default fixtures, in-process. tests/conformance/
mutants/mutmut_run.py copies this module into its staging directory; it is
not collected by the project's own test run (its name does not start with
``test_``).

The cases are planned once, when the module is imported (mutmut imports it
once and forks a process per mutant from there): planning is the kit's work,
which no mutant touches, and costs more than running most cases.
"""

from __future__ import annotations

import glob
from pathlib import Path

import pytest

from ggufsm.conformance.adapter import InProcessImplementation
from ggufsm.conformance.adapters.reference import make_adapter
from ggufsm.conformance.inputs import prepare_inputs
from ggufsm.conformance.run import runner
from ggufsm.spec import guard, load_spec

IMPLEMENTATION = InProcessImplementation(make_adapter, label="reference")
INPUTS = prepare_inputs(Path(__file__).resolve().parent / "suite-inputs")
_cases, _unreachable = runner.build_cases(load_spec(), INPUTS, IMPLEMENTATION.info)
CASES = {case.id: case for case in _cases}
CASE_IDS = [*CASES, *(missing.id for missing in _unreachable)]


def _run(case_id: str):
    """The case's result: through the runner's run_case where it has one, else its public run_suite."""
    run_case = getattr(runner, "run_case", None)
    if run_case is not None and case_id in CASES:
        return run_case(CASES[case_id], IMPLEMENTATION)
    [result] = runner.run_suite(IMPLEMENTATION, INPUTS, case_globs=[glob.escape(case_id)]).results
    return result


@pytest.mark.parametrize("case_id", CASE_IDS, ids=[case_id.replace("[", "(").replace("]", ")") for case_id in CASE_IDS])
def test_the_reference_passes(case_id: str) -> None:
    # The table's machine is built once per process and cached. A mutant of the code that builds it must be
    # the one that builds it, and mutmut must see every case reach that code (it runs only the tests it saw
    # reach a mutated function), so every case builds the machine anew (a few milliseconds).
    guard.lifecycle_machine.cache_clear()
    result = _run(case_id)
    assert result.status == runner.PASS, result.message
