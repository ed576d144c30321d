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

from toy_runtime import write_toy_model  # noqa: E402

from ggufsm.conformance.recipes import SuiteInputs  # noqa: E402


@pytest.fixture
def toy_on_child_path(monkeypatch):
    """Child processes (`ggufsm conformance serve --impl python:toy_runtime:...`) can import the toy."""
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(HERE), os.environ.get("PYTHONPATH")])))


def toy_suite_inputs(directory: Path) -> SuiteInputs:
    (directory / "corrupt.gguf").write_text("this is not a model")
    return SuiteInputs(
        model=str(write_toy_model(directory / "model.gguf", seed=1)),
        alt_model=str(write_toy_model(directory / "alt.gguf", seed=2)),
        corrupt_model=str(directory / "corrupt.gguf"),
        unsupported_model=str(write_toy_model(directory / "unsupported.gguf", arch="mamba9")),
        missing_model=str(directory / "missing.gguf"),
        n_ctx=64,
        long_generation=40,
    )


@pytest.fixture
def toy_inputs(tmp_path) -> SuiteInputs:
    return toy_suite_inputs(tmp_path)
