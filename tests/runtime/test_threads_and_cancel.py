"""Calls on one handle are serialized; handles are independent; a running generate can be cancelled."""

from __future__ import annotations

import threading

import pytest

from ggufsm.reference.runtime import Runtime
from ggufsm.spec import errors

GREEDY = {"temperature": 0.0}


def test_cancel_from_another_thread_keeps_the_tokens_so_far(ready_runtime):
    started = threading.Event()
    seen = []

    def on_token(event):
        seen.append(event.token_id)
        if len(seen) == 3:
            started.set()
            # Wait until the canceller has asked, so the stop point is deterministic.
            canceller.join()

    canceller = threading.Thread(target=lambda: (started.wait(), ready_runtime.cancel()))
    canceller.start()
    with pytest.raises(errors.Cancelled) as raised:
        ready_runtime.generate("hello", 50, on_token=on_token, stop_at_eos=False, **GREEDY)
    assert raised.value.state_after == "ContinuationReady"
    assert ready_runtime.state == "ContinuationReady"
    assert ready_runtime.diagnostics()["request"]["generated_tokens"] == 3
    ready_runtime.generate_next_token()  # the continuation is intact


def test_cancel_when_nothing_runs_changes_nothing(ready_runtime):
    assert ready_runtime.cancel() is False
    assert ready_runtime.state == "Ready"


def test_many_threads_on_one_handle_are_serialized_and_each_gets_a_whole_result(ready_runtime):
    expected = ready_runtime.generate("hello", 6, stop_at_eos=False, **GREEDY).token_ids
    results, failures = [], []

    def worker():
        try:
            results.append(ready_runtime.generate("hello", 6, stop_at_eos=False, **GREEDY).token_ids)
        except Exception as error:  # any error here is a failure of serialization
            failures.append(error)

    threads = [threading.Thread(target=worker) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not failures
    assert results == [expected] * 6


def test_separate_handles_hold_separate_state(tiny_model):
    first, second = Runtime(), Runtime()
    for runtime in (first, second):
        runtime.init_runtime(n_ctx=64, n_threads=1)
        runtime.load_model(tiny_model)
    first.generate("hello", 3, stop_at_eos=False, **GREEDY)
    assert first.state == "ContinuationReady" and second.state == "Ready"
    second.free()
    assert first.generate_next_token() is not None


def test_streaming_yields_tokens_and_an_early_exit_keeps_the_continuation(ready_runtime):
    stream = ready_runtime.generate_stream("hello", 20, stop_at_eos=False, **GREEDY)
    taken = [next(stream) for _ in range(4)]
    stream.close()
    assert [event.index for event in taken] == [0, 1, 2, 3]
    assert ready_runtime.state == "ContinuationReady"
    assert ready_runtime.diagnostics()["request"]["generated_tokens"] >= 4
