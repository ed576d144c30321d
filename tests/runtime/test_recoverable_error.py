"""RecoverableError: the model stays resident, last_error says what went wrong, and every way out works.
The state each way out leads to is read from the table, not written here."""

from __future__ import annotations

import pytest

from ggufsm.reference.runtime import Runtime
from ggufsm.spec import errors, load_spec

GREEDY = {"temperature": 0.0}


@pytest.fixture
def failed_runtime(ready_runtime):
    """A runtime that refused a prompt over its context: RecoverableError with the model resident."""
    with pytest.raises(errors.ContextOverflow):
        ready_runtime.generate("hello " * 200, 4)
    assert ready_runtime.state == "RecoverableError"
    return ready_runtime


def test_a_rejected_request_keeps_the_model_and_records_the_error(failed_runtime):
    diagnostics = failed_runtime.diagnostics()
    assert {"model", "last_error"} <= set(diagnostics["resident"])
    assert failed_runtime.last_error.code == "ContextOverflow"
    assert failed_runtime.last_error.state_after == "RecoverableError"
    assert "context holds 64" in failed_runtime.last_error.message
    assert diagnostics["last_error"]["code"] == "ContextOverflow"


def test_the_error_carries_code_message_and_state_after(failed_runtime):
    error = failed_runtime.last_error
    assert isinstance(error, errors.GgufsmError)
    assert error.to_dict()["code"] == "ContextOverflow"
    assert error.to_dict()["state_after"] == "RecoverableError"


@pytest.mark.parametrize("way_out", ["reset", "free", "generate", "replace_model", "set_sampling"])
def test_every_way_out_of_recoverable_error_lands_where_the_table_says(failed_runtime, other_tiny_model, way_out):
    call = {
        "reset": (failed_runtime.reset, {"model_resident": True}),
        "free": (failed_runtime.free, {}),
        "generate": (lambda: failed_runtime.generate("hello", 2, **GREEDY),
                     {"model_resident": True, "input_valid": True, "sampling_valid": True, "prompt_fits": True,
                      "model_intact": True, "logits_finite": True, "cancelled": False}),
        "replace_model": (lambda: failed_runtime.replace_model(other_tiny_model),
                          {"model_resident": True, "model_readable": True, "model_well_formed": True,
                           "model_supported": True}),
        "set_sampling": (lambda: failed_runtime.set_sampling(temperature=0.5),
                         {"model_resident": True, "sampling_valid": True}),
    }
    action, guards = call[way_out]
    spec = load_spec()
    expected = spec.outcome("RecoverableError", way_out, {name: guards[name]
                                                          for name in spec.guards_for("RecoverableError", way_out)})
    assert expected.error is None
    action()
    assert failed_runtime.state == expected.to
    allowed = set(spec.resident(expected.to)[0]) | set(spec.resident(expected.to)[1])
    assert set(failed_runtime.diagnostics()["resident"]) <= allowed


def test_after_reset_the_output_equals_a_runtime_that_never_failed(failed_runtime, tiny_model):
    failed_runtime.reset()
    after = failed_runtime.generate("hello world", 6, stop_at_eos=False, **GREEDY).token_ids
    fresh = Runtime()
    fresh.init_runtime(n_ctx=64, n_threads=1)
    fresh.load_model(tiny_model)
    assert after == fresh.generate("hello world", 6, stop_at_eos=False, **GREEDY).token_ids
    fresh.free()
