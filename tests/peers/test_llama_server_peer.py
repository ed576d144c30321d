"""llama-server's adapter drives a server it starts on 127.0.0.1 and stops (opt-in: needs the llama-server binary,
named by $GGUFSM_LLAMA_SERVER or found on PATH)."""

from __future__ import annotations

import os
import shutil
import signal

import pytest

from ggufsm.conformance.adapter import INTERNAL_ERROR, NOT_SUPPORTED
from ggufsm.conformance.adapters.llama_server import SERVER_ENV
from ggufsm.spec.names import ErrorCode

pytestmark = pytest.mark.peer
if not (os.environ.get(SERVER_ENV) or shutil.which("llama-server")):
    pytest.skip(f"llama-server not found (set {SERVER_ENV})", allow_module_level=True)


@pytest.fixture
def adapter():
    from ggufsm.conformance.adapters.llama_server import make_adapter

    made = make_adapter()
    yield made
    made.close()


def _loaded(adapter, inputs):
    assert adapter.call("init_runtime", {"n_ctx": 64, "n_threads": 1}).ok
    reply = adapter.call("load_model", {"path": inputs.model})
    assert reply.ok, reply.describe()


def test_generate_streams_token_ids_and_free_stops_the_server(adapter, tiny_inputs):
    _loaded(adapter, tiny_inputs)
    events = []
    reply = adapter.call("generate", {"prompt": [1, 2, 3], "max_tokens": 4, "stop_at_eos": False},
                         on_token=events.append)
    assert reply.ok, reply.describe()
    # The ids the stream carried, as it carried them (a token held back as an unfinished UTF-8 character
    # is later sent without its id: the published report counts that against the server).
    assert [event["token_id"] for event in events] == reply.value["token_ids"]
    assert reply.value["finish_reason"] == "length"
    process = adapter._server.process
    assert adapter.call("free").ok
    assert process.poll() is not None
    assert adapter.call("generate", {"prompt": [1], "max_tokens": 1}).code == ErrorCode.ModelNotLoaded


def test_a_load_the_server_refuses_is_its_exit_classified_from_its_log(adapter, tiny_inputs):
    assert adapter.call("load_model", {"path": tiny_inputs.missing_model}).code == ErrorCode.ModelUnavailable
    assert adapter.call("load_model", {"path": tiny_inputs.corrupt_model}).code == ErrorCode.InvalidModel


def test_a_server_that_dies_fails_the_call_with_its_signal(adapter, tiny_inputs):
    _loaded(adapter, tiny_inputs)
    adapter._server.process.send_signal(signal.SIGKILL)
    adapter._server.process.wait()
    reply = adapter.call("generate", {"prompt": [1], "max_tokens": 1})
    assert reply.code == INTERNAL_ERROR and "SIGKILL" in reply.error.message


def test_operations_with_no_http_counterpart_are_not_supported(adapter):
    for op in ("set_sampling", "replace_model", "state", "last_error", "diagnostics"):
        assert adapter.call(op, {}).code == NOT_SUPPORTED
