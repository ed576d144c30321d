"""Fixtures for the conformance kit's tests: the toy runtime (importable here and in child processes)
and suite inputs made of toy model files."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from toy_inputs import toy_suite_inputs  # noqa: E402

from ggufsm.conformance.plan.recipes import SuiteInputs  # noqa: E402


@pytest.fixture
def toy_on_child_path(monkeypatch):
    """Child processes (`ggufsm conformance serve --impl python:toy_runtime:...`) can import the toy."""
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(HERE), os.environ.get("PYTHONPATH")])))


@pytest.fixture
def toy_inputs(tmp_path) -> SuiteInputs:
    return toy_suite_inputs(tmp_path)
