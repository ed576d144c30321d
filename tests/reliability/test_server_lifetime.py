"""The server's lifetime: pending requests are bounded (Busy), and the end of its input or SIGTERM cancels
what runs, drops every handle and ends the process.

Every wait is on the server's own answers and events; the timeouts are hang
guards. "Within 1 s" is judged by order: a generate asked for thousands of
tokens must answer ``cancelled`` after the input ends, which it can only do
if the end of input cancelled it.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading

import pytest
from server_harness import HANG_GUARD_S, PipedServer

from ggufsm.conformance import protocol
from ggufsm.conformance.adapter import PythonAdapter
from ggufsm.conformance.adapters.reference import ReferenceAdapter
from ggufsm.conformance.fixtures.tiny_models import write_tiny_llama
from ggufsm.spec.names import State

LONG = 4000   # tokens a generate asks for: far more than it makes before the cancel lands


@pytest.fixture(scope="module")
def long_context_model(tmp_path_factory):
    """The tiny llama with a 4,096-token training context, so a generate of LONG tokens fits."""
    return write_tiny_llama(tmp_path_factory.mktemp("long") / "tiny-llama-4096.gguf", seed=0, n_ctx=4096)


class BlockingAdapter(PythonAdapter):
    """A runtime whose generate waits until the test lets it go (no cancel: only the release ends it)."""

    name = "blocking"
    release = threading.Event()

    def op_generate(self, prompt: str, max_tokens: int = 1) -> dict:
        self.release.wait(HANG_GUARD_S)
        return {"token_ids": [], "text": "", "finish_reason": "length", "prompt_tokens": 1}

    def op_state(self) -> str:
        return "Ready"


def test_pending_requests_are_bounded_and_the_ones_over_the_bound_are_busy():
    BlockingAdapter.release.clear()
    baseline = threading.active_count()
    piped = PipedServer(BlockingAdapter)
    bound, sent = protocol.MAX_PENDING_PER_HANDLE, 1000
    piped.send(*(protocol.request(n, "generate", {"prompt": "x"}) for n in range(sent)))
    busy = piped.answers.wait_for(lambda seen: len(seen) == sent - bound, f"{sent - bound} Busy answers")
    assert all(answer["error"]["code"] == "Busy" for answer in busy)
    assert {answer["id"] for answer in busy} == set(range(bound, sent))
    # one thread per pending command, the lane and the reader: never one per request sent
    assert threading.active_count() <= baseline + bound + 3
    # queries and controls are bounded apart: they still answer while the commands are at their bound
    piped.send(protocol.request("query", "state"))
    assert piped.answers.answer("query")["value"] == "Ready"
    BlockingAdapter.release.set()
    answers = piped.answers.wait_for(lambda seen: len(seen) == sent + 1, "the answers of the admitted commands")
    assert sorted(answer["id"] for answer in answers if answer["ok"] and answer["id"] != "query") == list(range(bound))
    piped.end_input()


def test_handles_are_bounded_too():
    piped = PipedServer(BlockingAdapter)
    piped.send(*(protocol.request(n, "open_handle") for n in range(protocol.MAX_HANDLES + 1)))
    last = piped.answers.answer(protocol.MAX_HANDLES)
    assert last["error"]["code"] == "Busy"
    piped.end_input()


def streaming_generate(request_id: int) -> dict:
    return protocol.request(request_id, "generate", {"prompt": "Once upon a time", "max_tokens": LONG,
                                                     "stop_at_eos": False, "stream": True,
                                                     "sampling": {"temperature": 0}})


def test_the_end_of_input_cancels_the_running_generate_and_frees_every_handle(long_context_model):
    adapters: list[ReferenceAdapter] = []

    def open_adapter() -> ReferenceAdapter:
        adapters.append(ReferenceAdapter())
        return adapters[-1]

    piped = PipedServer(open_adapter)
    piped.send(protocol.request(1, "init_runtime", {"n_ctx": 4096, "n_threads": 1}),
               protocol.request(2, "load_model", {"path": str(long_context_model)}),
               protocol.request(3, "open_handle"))
    assert piped.answers.answer(2)["ok"] and piped.answers.answer(3)["ok"]
    piped.send(streaming_generate(4), protocol.request(5, "generate", {"prompt": "again", "max_tokens": LONG}))
    piped.answers.wait_for(lambda seen: any(m.get("event") == "token" for m in seen), "a token event")
    piped.end_input()
    generate = piped.answers.answer(4)
    assert generate["error"]["code"] == "Cancelled" and generate["value"]["finish_reason"] == "cancelled"
    assert len(generate["value"]["token_ids"]) < LONG
    assert piped.answers.answer(5)["ok"] is False   # waited behind the first: cancelled or refused unrun
    # freed: the handle that held a model is Freed; the one never initialised stays Uninitialized (table)
    assert [adapter.runtime.state for adapter in adapters] == [State.Freed, State.Uninitialized]
    assert all("model" not in adapter.runtime.diagnostics()["resident"] for adapter in adapters)


def serve_stdio_process(*arguments: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "ggufsm", "serve-stdio", *arguments], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def send(process: subprocess.Popen, *messages: dict) -> None:
    assert process.stdin is not None
    process.stdin.write(b"".join(protocol.encode(message).encode() for message in messages))
    process.stdin.flush()


def read_until(process: subprocess.Popen, predicate) -> list[dict]:
    """Lines from the process's stdout until one satisfies predicate (the read blocks: the process's own
    output is the only clock); at EOF, what was read."""
    assert process.stdout is not None
    seen = []
    while line := process.stdout.readline():
        seen.append(json.loads(line))
        if predicate(seen[-1]):
            break
    return seen


@pytest.mark.parametrize("ending", ["end of input", "SIGTERM"])
def test_serve_stdio_cancels_frees_and_exits_when_its_client_goes(long_context_model, ending):
    process = serve_stdio_process()
    try:
        send(process, protocol.request(1, "init_runtime", {"n_ctx": 4096, "n_threads": 1}),
             protocol.request(2, "load_model", {"path": str(long_context_model)}), streaming_generate(3))
        assert read_until(process, lambda message: message.get("event") == "token")[-1]["id"] == 3
        if ending == "SIGTERM":
            process.send_signal(signal.SIGTERM)
        else:
            assert process.stdin is not None
            process.stdin.close()
        rest = read_until(process, lambda message: False)   # everything up to the process's EOF
        assert process.wait(HANG_GUARD_S) == 0
    finally:
        process.kill()
        process.wait()
    generate, = [message for message in rest if message.get("id") == 3 and "ok" in message]
    assert generate["error"]["code"] == "Cancelled"
    assert len(generate["value"]["token_ids"]) < LONG
