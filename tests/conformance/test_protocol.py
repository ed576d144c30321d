"""The JSON-lines protocol: every message follows the schema; hello, NotSupported, ProtocolError;
cancel answers while a generate runs; a dying implementation is reported with its signal."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from ggufsm.conformance import protocol
from ggufsm.conformance.adapter import Gate, ImplementationDied, open_implementation
from ggufsm.conformance.protocol import PROTOCOL_VERSION, schema_problems

REPO = Path(__file__).resolve().parents[2]
SERVE_TOY = [sys.executable, "-m", "ggufsm", "conformance", "serve", "--impl", "python:toy_runtime:make_adapter"]


def converse(requests: list[dict]) -> list[dict]:
    """Send requests to a served toy runtime, each after the previous answer; return every line it wrote."""
    script = "".join(protocol.encode(message) for message in requests)
    done = subprocess.run(SERVE_TOY, input=script, capture_output=True, text=True, check=True)
    return [json.loads(line) for line in done.stdout.splitlines()]


def test_every_message_of_a_session_follows_the_schema(toy_on_child_path, toy_inputs):
    requests = [
        protocol.request(1, "hello"),
        protocol.request(2, "init_runtime", {"n_ctx": 64}),
        protocol.request(3, "diagnostics"),
    ]
    for request in requests:
        assert schema_problems(request) == []
    answers = converse(requests)
    # Each is answered once; a query sent behind a command may answer first (it never waits for one).
    assert sorted(answer["id"] for answer in answers) == [1, 2, 3]
    for answer in answers:
        assert schema_problems(answer) == [], answer


def test_hello_names_the_protocol_version_the_implementation_and_its_capabilities(toy_on_child_path):
    hello, = converse([protocol.request("h", "hello")])
    assert schema_problems(hello["value"], "hello_value") == []
    assert hello["value"]["protocol"] == PROTOCOL_VERSION
    assert hello["value"]["implementation"]["name"] == "toy-runtime"
    capabilities = hello["value"]["capabilities"]
    assert capabilities["state"] is True and capabilities["diagnostics"] is True
    assert {"generate", "cancel", "replace_model"} <= set(capabilities["operations"])


def test_an_operation_the_implementation_lacks_is_not_supported(toy_on_child_path):
    answer, = converse([protocol.request(1, "teleport")])
    assert answer["ok"] is False and answer["error"]["code"] == "NotSupported"
    assert schema_problems(answer) == []


def test_a_malformed_line_is_a_protocol_error_and_the_server_goes_on(toy_on_child_path):
    script = "{not json\n" + json.dumps({"id": 7, "op": 3}) + "\n" + protocol.encode(protocol.request(8, "state"))
    done = subprocess.run(SERVE_TOY, input=script, capture_output=True, text=True, check=True)
    answers = [json.loads(line) for line in done.stdout.splitlines()]
    assert [(answer["id"], answer["error"]["code"]) for answer in answers[:2]] == [(None, "ProtocolError"), (7, "ProtocolError")]
    assert answers[2] == {"id": 8, "ok": True, "state": "Uninitialized", "value": "Uninitialized"}
    for answer in answers:
        assert schema_problems(answer) == []


def test_a_generate_paused_after_its_first_token_is_cancelled_meanwhile_and_keeps_that_token(toy_on_child_path,
                                                                                            toy_inputs):
    with open_implementation("python:toy_runtime:make_adapter") as implementation:
        adapter = implementation.open()
        assert adapter.capabilities.pause
        assert adapter.call("init_runtime", {"n_ctx": 64}).ok
        assert adapter.call("load_model", {"path": toy_inputs.model}).ok
        gate, tokens, replies = Gate(after_tokens=1), [], []
        generating = threading.Thread(target=lambda: replies.append(adapter.call(
            "generate", {"prompt": "a b", "max_tokens": 60, "stop_at_eos": False}, on_token=tokens.append, gate=gate)))
        generating.start()
        gate.paused.wait(30)
        assert adapter.call("state").value == "Generating"          # held: it cannot have ended
        cancel = adapter.call("cancel")                              # answered on the handle's lane meanwhile
        gate.resume()
        generating.join(30)
    assert cancel.ok and cancel.value == {"was_running": True}
    [reply] = replies
    assert reply.code == "Cancelled" and reply.state == "ContinuationReady"
    assert reply.value["token_ids"] == [token["token_id"] for token in tokens] and len(tokens) == 1
    assert all(schema_problems(token, "token") == [] for token in tokens)


def test_handles_are_separate_runtimes_in_one_process(toy_on_child_path, toy_inputs):
    with open_implementation("python:toy_runtime:make_adapter") as implementation:
        first = implementation.open()
        second = implementation.open_handle()
        assert first.capabilities.handles and second.handle is not None
        assert first.call("load_model", {"path": toy_inputs.missing_model}).code == "ModelUnavailable"
        assert (first.call("state").value, second.call("state").value) == ("RecoverableError", "Uninitialized")
        assert second.call("last_error").value is None
        second.close()
        assert implementation._request(implementation._child, "close_handle", {"handle": second.handle}, None,
                                       10).code == "ProtocolError"   # already closed


def test_memory_is_read_in_the_implementations_process_after_its_allocator_returned_free_memory(toy_on_child_path):
    with open_implementation("python:toy_runtime:make_adapter") as implementation:
        reading = implementation.open().memory()
    assert reading is not None and reading.trimmed and reading.rss > 1 << 20


def test_a_dying_implementation_is_reported_with_its_signal_and_replaced(toy_on_child_path):
    with open_implementation("python:toy_runtime:make_aborts_on_free") as implementation:
        adapter = implementation.open()
        assert adapter.call("init_runtime", {"n_ctx": 64}).ok
        with pytest.raises(ImplementationDied) as died:
            adapter.call("free")
        assert died.value.signal == 6 and "SIGABRT" in str(died.value)
        fresh = implementation.open()   # a new process
        assert fresh.call("state").value == "Uninitialized"
        assert implementation.restarts == 1


def test_the_published_schema_is_the_one_the_kit_uses():
    assert (REPO / "docs" / "protocol.schema.json").read_text() == protocol.SCHEMA_PATH.read_text()


def test_requests_may_arrive_while_a_command_runs(toy_on_child_path, toy_inputs):
    """The server reads on one thread: a state query sent right after a slow load is answered at once."""
    with open_implementation("python:toy_runtime:make_adapter") as implementation:
        adapter = implementation.open()
        loading = threading.Thread(target=lambda: adapter.call("load_model", {"path": toy_inputs.model}))
        loading.start()
        states = {adapter.call("state").value for _ in range(50)}
        loading.join()
    assert states <= {"Uninitialized", "Initialized", "Loading", "Ready"}
