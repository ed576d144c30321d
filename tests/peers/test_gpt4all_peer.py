"""GPT4All's adapter maps each operation to its Python API and adds nothing (opt-in: needs gpt4all)."""

from __future__ import annotations

import pytest

from ggufsm.conformance.adapter import NOT_SUPPORTED
from ggufsm.spec.names import ErrorCode

pytestmark = pytest.mark.peer
pytest.importorskip("gpt4all", reason="gpt4all is not installed")


@pytest.fixture
def adapter():
    from ggufsm.conformance.adapters.gpt4all import make_adapter

    made = make_adapter()
    yield made
    made.close()


def test_a_missing_model_file_is_model_unavailable(adapter, tiny_inputs):
    assert adapter.call("load_model", {"path": tiny_inputs.missing_model}).code == ErrorCode.ModelUnavailable


def test_token_id_prompts_and_generation_past_eos_have_no_counterpart(adapter, tiny_inputs):
    assert adapter.call("load_model", {"path": tiny_inputs.model}).ok
    assert adapter.call("generate", {"prompt": [1, 2], "max_tokens": 1}).code == NOT_SUPPORTED
    assert adapter.call("generate", {"prompt": "a", "max_tokens": 1, "stop_at_eos": False}).code == NOT_SUPPORTED


def test_operations_the_library_lacks_are_not_supported_never_passes(adapter):
    for op in ("set_sampling", "generate_next_token", "reset", "replace_model", "state", "last_error", "diagnostics"):
        assert adapter.call(op, {}).code == NOT_SUPPORTED
