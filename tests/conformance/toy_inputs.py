"""Suite inputs made of toy model files (the toy runtime's own format)."""

from __future__ import annotations

from pathlib import Path

from toy_runtime import write_toy_model

from ggufsm.conformance.plan.recipes import SuiteInputs


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
