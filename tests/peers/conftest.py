"""Fixtures for the peers' opt-in tests: the kit's tiny fixtures (the default suite inputs)."""

from __future__ import annotations

import pytest

from ggufsm.conformance.plan.recipes import SuiteInputs


@pytest.fixture(scope="module")
def tiny_inputs(tmp_path_factory) -> SuiteInputs:
    """The suite's default inputs: the tiny successor llamas, a corrupt file, an unknown architecture, a missing path."""
    from ggufsm.conformance.inputs import prepare_inputs

    return prepare_inputs(tmp_path_factory.mktemp("peer-inputs"))
