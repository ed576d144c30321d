"""The decode scheduler (reference/runtime/batching.py): steps of several sessions queued together run as one
pass, each caller gets its session's own logits or its own error, and a caller alone is never held up.

No sleeps: where a test needs steps to queue up behind a running pass, that pass is held inside a session
proxy until the scheduler's own queue (watched through `DecodeScheduler.watch`) holds them.
"""

from __future__ import annotations

import threading

import numpy as np
import pytest

from ggufsm import _core
from ggufsm.conformance.fixtures.tiny_models import TinyLlamaSpec, write_tiny_llama
from ggufsm.reference.model.gguf_file import open_gguf
from ggufsm.reference.runtime.batching import DecodeScheduler
from ggufsm.spec.errors import ContextOverflow, InvalidInput

N_VOCAB = TinyLlamaSpec().n_vocab
N_CTX = 32


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return _core.LlamaModel(open_gguf(write_tiny_llama(tmp_path_factory.mktemp("sched") / "tiny.gguf")).core, 2)


def twins(model, n):
    """n sessions and n twins, each pair prefilled alike (with different prompts across pairs)."""
    pairs = []
    for i in range(n):
        a, b = _core.LlamaSession(model, N_CTX), _core.LlamaSession(model, N_CTX)
        prompt = [1 + i, 2 + i, 3 + 2 * i]
        a.prefill(prompt, 0)
        b.prefill(prompt, 0)
        pairs.append((a, b))
    return pairs


class HeldSession:
    """A session whose decode waits until `n` steps are queued in the scheduler, then decodes."""

    def __init__(self, session, scheduler, n):
        self.session, self.scheduler, self.n = session, scheduler, n
        self.entered = threading.Event()

    @property
    def logits(self):
        return self.session.logits

    def decode(self, token, pos):
        self.entered.set()
        self.scheduler.watch(lambda: len(self.scheduler._queue) == self.n)
        return self.session.decode(token, pos)


def run_behind_a_held_pass(scheduler, held, steps):
    """The held session leads a pass of its own; `steps` [(session, token, pos)] queue behind it and then run as
    the next pass. Returns the held caller's outcome and each step's (logits copy or exception)."""
    outcomes: dict[int, object] = {}

    def call(key, session, token, pos):
        try:
            outcomes[key] = scheduler.decode(session, token, pos).copy()
        except Exception as error:  # noqa: BLE001 - the test inspects it
            outcomes[key] = error

    leader = threading.Thread(target=call, args=(-1, held, 7, 3))
    leader.start()
    held.entered.wait()
    callers = [threading.Thread(target=call, args=(i, *step)) for i, step in enumerate(steps)]
    for t in callers:
        t.start()
    for t in [leader, *callers]:
        t.join()
    return outcomes


def test_a_caller_alone_runs_its_own_decode_at_once_with_its_own_logits(model):
    scheduler = DecodeScheduler(model)
    (a, b), = twins(model, 1)
    for pos, token in enumerate([4, 9, 2], start=3):
        np.testing.assert_array_equal(scheduler.decode(a, token, pos), b.decode(token, pos))
    assert scheduler.pass_sizes == {1: 3}


def test_a_wake_set_before_its_wait_is_consumed_by_that_wait_and_two_sets_are_one_wake():
    from ggufsm.reference.runtime.batching import Wake

    wake = Wake()
    assert not wake.wait(0)
    wake.set()
    wake.set()
    assert wake.wait(None)
    assert not wake.wait(0)
    wake.set()
    assert wake.wait(0)


def test_a_caller_alone_makes_nothing_to_sleep_on(model, monkeypatch):
    """A handle alone runs its step at once: nothing to sleep on (a Wake) is made for it, as none is waited on."""
    from ggufsm.reference.runtime import batching

    made = []

    class NotedWake(batching.Wake):
        __slots__ = ()

        def __init__(self):
            made.append(self)
            super().__init__()

    monkeypatch.setattr(batching, "Wake", NotedWake)
    scheduler = DecodeScheduler(model)
    (a, b), = twins(model, 1)
    for pos, token in enumerate([4, 9, 2], start=3):
        np.testing.assert_array_equal(scheduler.decode(a, token, pos), b.decode(token, pos))
    assert made == []


def test_steps_queued_behind_a_running_pass_run_together_next_each_with_its_sessions_own_logits(model):
    scheduler = DecodeScheduler(model)
    pairs = twins(model, 4)
    held = HeldSession(pairs[0][0], scheduler, 3)
    outcomes = run_behind_a_held_pass(scheduler, held, [(a, 5 + i, 3) for i, (a, _) in enumerate(pairs[1:])])
    assert scheduler.pass_sizes == {1: 1, 3: 1}
    np.testing.assert_array_equal(outcomes[-1], pairs[0][1].decode(7, 3))
    for i, (_, b) in enumerate(pairs[1:]):
        np.testing.assert_array_equal(outcomes[i], b.decode(5 + i, 3))


def test_a_bad_step_in_a_pass_fails_alone_and_the_others_get_their_logits(model):
    scheduler = DecodeScheduler(model)
    pairs = twins(model, 4)
    held = HeldSession(pairs[0][0], scheduler, 3)
    steps = [(pairs[1][0], 5, 3), (pairs[2][0], N_VOCAB, 3), (pairs[3][0], 6, N_CTX)]
    outcomes = run_behind_a_held_pass(scheduler, held, steps)
    assert isinstance(outcomes[1], InvalidInput) and f"token id {N_VOCAB}" in str(outcomes[1])
    assert isinstance(outcomes[2], ContextOverflow)
    np.testing.assert_array_equal(outcomes[0], pairs[1][1].decode(5, 3))
    # The failed sessions evaluated nothing: their next good step equals their twins'.
    np.testing.assert_array_equal(scheduler.decode(pairs[2][0], 5, 3), pairs[2][1].decode(5, 3))
    np.testing.assert_array_equal(scheduler.decode(pairs[3][0], 6, 3), pairs[3][1].decode(6, 3))


def test_four_callers_generating_at_once_each_get_exactly_their_own_sessions_logits(model):
    scheduler = DecodeScheduler(model)
    pairs = twins(model, 4)
    steps = 6
    start = threading.Barrier(4)
    got: dict[int, list[np.ndarray]] = {i: [] for i in range(4)}

    def generate(i):
        start.wait()
        for k in range(steps):
            got[i].append(scheduler.decode(pairs[i][0], (i + 3 * k) % N_VOCAB, 3 + k).copy())

    threads = [threading.Thread(target=generate, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(size * count for size, count in scheduler.pass_sizes.items()) == 4 * steps
    assert max(scheduler.pass_sizes) <= 4
    for i, (_, b) in enumerate(pairs):
        for k in range(steps):
            np.testing.assert_array_equal(got[i][k], b.decode((i + 3 * k) % N_VOCAB, 3 + k))


def test_a_leader_lets_the_last_passs_sessions_queue_again_so_handles_stay_one_pass(model, monkeypatch):
    """With no bound on the gather, the rule alone decides the grouping: after the held first pass, each pass
    waits for the sessions of the one before, so the two callers decode together to the end."""
    from ggufsm.reference.runtime import batching

    monkeypatch.setattr(batching, "GATHER_MAX_S", 3600.0)
    monkeypatch.setattr(batching, "GATHER_SHARE", 10.0**9)
    scheduler = DecodeScheduler(model)
    (a, a_twin), (b, b_twin) = twins(model, 2)
    steps = 5
    got: dict[str, list[np.ndarray]] = {"a": [], "b": []}
    run, entered = scheduler._run, threading.Event()

    def first_pass_held(pass_steps):  # a's first step runs alone, once b's first step is queued behind it
        if not entered.is_set():
            entered.set()
            scheduler.watch(lambda: len(scheduler._queue) == 1)
        run(pass_steps)

    scheduler._run = first_pass_held

    def run_a():  # one step more than b, so that both end on the same pass
        for k in range(steps + 1):
            got["a"].append(scheduler.decode(a, 4 + k, 3 + k).copy())

    def run_b():
        entered.wait()
        for k in range(steps):
            got["b"].append(scheduler.decode(b, 9 + k, 3 + k).copy())

    threads = [threading.Thread(target=run_a), threading.Thread(target=run_b)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert scheduler.pass_sizes == {1: 1, 2: steps}
    for k in range(steps + 1):
        np.testing.assert_array_equal(got["a"][k], a_twin.decode(4 + k, 3 + k))
    for k in range(steps):
        np.testing.assert_array_equal(got["b"][k], b_twin.decode(9 + k, 3 + k))


def test_a_caller_alone_never_waits_for_anyone_however_long_the_gather_may_be(model, monkeypatch):
    from ggufsm.reference.runtime import batching

    monkeypatch.setattr(batching, "GATHER_MAX_S", 3600.0)
    monkeypatch.setattr(batching, "GATHER_SHARE", 10.0**9)
    scheduler = DecodeScheduler(model)
    (a, b), = twins(model, 1)
    for pos, token in enumerate([4, 9, 2, 7], start=3):
        np.testing.assert_array_equal(scheduler.decode(a, token, pos), b.decode(token, pos))
    assert scheduler.pass_sizes == {1: 4}


def gathering(scheduler) -> None:
    """Until a leader is gathering the last pass's sessions (a watcher is woken as it starts)."""
    scheduler.watch(lambda: scheduler._gatherer is not None)


def test_the_last_of_the_last_passs_sessions_to_queue_runs_the_gathered_pass_on_its_own_thread(model, monkeypatch):
    """Each returning caller queueing is not the leader's business: the last one ends the gather and runs the
    pass itself (it holds the GIL already), so the gathering leader is not woken to run it (a wake-up is a
    thread hand-off under the GIL between two passes); the leader wakes with its step's logits in."""
    from ggufsm.reference.runtime import batching

    monkeypatch.setattr(batching, "GATHER_MAX_S", 3600.0)
    monkeypatch.setattr(batching, "GATHER_SHARE", 10.0**9)
    scheduler = DecodeScheduler(model)
    (a, a_twin), (b, b_twin), (c, c_twin) = twins(model, 3)
    with scheduler._lock:  # as a pass of a, b and c leaves it: all three expected back, after a pass of 1 s
        scheduler._awaited = {id(a), id(b), id(c)}
        scheduler._last_pass_s = 1.0
    got: dict[str, np.ndarray] = {}
    ran_on: list[str] = []
    run = scheduler._run

    def noted_run(steps):
        ran_on.append(threading.current_thread().name)
        run(steps)

    scheduler._run = noted_run

    def call(name, session, token):
        got[name] = scheduler.decode(session, token, 3).copy()

    leader = threading.Thread(target=call, args=("a", a, 4), name="a")
    leader.start()
    gathering(scheduler)  # a leads and waits for b and c
    second = threading.Thread(target=call, args=("b", b, 5), name="b")
    second.start()
    scheduler.watch(lambda: len(scheduler._queue) == 2)
    last = threading.Thread(target=call, args=("c", c, 6), name="c")
    last.start()
    for t in (leader, second, last):
        t.join()
    assert ran_on == ["c"]
    assert scheduler.pass_sizes == {3: 1}
    for name, twin, token in (("a", a_twin, 4), ("b", b_twin, 5), ("c", c_twin, 6)):
        np.testing.assert_array_equal(got[name], twin.decode(token, 3))


def test_a_withdrawn_session_is_no_longer_waited_for_and_the_leader_runs_at_once(model, monkeypatch):
    from ggufsm.reference.runtime import batching

    monkeypatch.setattr(batching, "GATHER_MAX_S", 3600.0)
    monkeypatch.setattr(batching, "GATHER_SHARE", 10.0**9)
    scheduler = DecodeScheduler(model)
    (a, a_twin), (b, _) = twins(model, 2)
    with scheduler._lock:  # as a pass of a and b leaves it
        scheduler._awaited = {id(a), id(b)}
        scheduler._last_pass_s = 1.0
    got: list[np.ndarray] = []
    leader = threading.Thread(target=lambda: got.append(scheduler.decode(a, 4, 3).copy()))
    leader.start()
    gathering(scheduler)  # a waits for b
    scheduler.withdraw(b)  # b's request ended
    leader.join()
    assert scheduler.pass_sizes == {1: 1}
    np.testing.assert_array_equal(got[0], a_twin.decode(4, 3))
