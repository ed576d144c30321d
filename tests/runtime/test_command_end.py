"""A command's own end state, while a command that waited behind it already runs (no sleeps: events order it)."""

from __future__ import annotations

import threading

from ggufsm.conformance.adapters.reference import ReferenceAdapter
from ggufsm.reference.runtime import Runtime

GREEDY = {"temperature": 0.0}


def test_the_end_a_command_reports_is_its_own_when_the_next_command_has_started(tiny_model):
    runtime = Runtime()
    runtime.init_runtime(n_ctx=128, n_threads=1)
    runtime.load_model(str(tiny_model))
    second_running, release_second = threading.Event(), threading.Event()

    def hold_second(event):
        second_running.set()
        release_second.wait()

    second = threading.Thread(target=lambda: runtime.generate("hello", 2, on_token=hold_second,
                                                              stop_at_eos=False, **GREEDY))
    first_token_out = threading.Event()

    def start_second_at_first_token(event):
        if not first_token_out.is_set():
            first_token_out.set()
            second.start()   # queued behind this generate on the handle's lock

    before = runtime.last_command_end()
    runtime.generate("hello", 3, on_token=start_second_at_first_token, stop_at_eos=False, **GREEDY)
    second_running.wait()   # the queued generate took the handle as this one let it go
    try:
        assert runtime.state == "Generating"
        end = runtime.last_command_end()
        assert end is not None and end != before
        assert end.state == "ContinuationReady"
        assert end.serial == before.serial + 1
    finally:
        release_second.set()
        second.join()
    assert runtime.state == "ContinuationReady"
    assert runtime.last_command_end() == end, "another thread's command does not change this thread's end"


class ReplyAfterTheNextCommandStarted(ReferenceAdapter):
    """Reads a reply's state on the main thread only once `hold_reply` is set: the race's window, held open."""

    hold_reply: threading.Event | None = None

    def reply_state(self):
        if self.hold_reply is not None and threading.current_thread() is threading.main_thread():
            self.hold_reply.wait()
        return super().reply_state()


def test_the_reference_adapter_replies_with_the_state_its_own_command_left(tiny_model):
    adapter = ReplyAfterTheNextCommandStarted()
    assert adapter.call("init_runtime", {"n_ctx": 128, "n_threads": 1}).ok
    assert adapter.call("load_model", {"path": str(tiny_model)}).ok
    second_running, release_second = threading.Event(), threading.Event()
    replies = []

    def hold_second(token):
        second_running.set()
        release_second.wait()

    def run_second():
        replies.append(adapter.call("generate", {"prompt": "hello", "max_tokens": 2, "stop_at_eos": False,
                                                 "sampling": GREEDY}, on_token=hold_second))

    second = threading.Thread(target=run_second)

    def start_second(token):
        if not second.is_alive() and not second_running.is_set() and token["index"] == 0:
            second.start()

    adapter.hold_reply = second_running
    first = adapter.call("generate", {"prompt": "hello", "max_tokens": 3, "stop_at_eos": False, "sampling": GREEDY},
                         on_token=start_second)
    adapter.hold_reply = None
    try:
        assert adapter.current_state() == "Generating"
        assert first.ok and first.state == "ContinuationReady"
        query = adapter.call("state")
        assert query.ok and query.state == "Generating", "a query carries the state as it is now"
    finally:
        release_second.set()
        second.join()
    assert replies[0].ok and replies[0].state == "ContinuationReady"
    adapter.close()
