"""Decode steps of several sessions on one model, run together as one forward pass.

Several handles generating at once on the same model each need one decode step
per token, and a decode step is bound by reading the weights. `DecodeScheduler`
lets each handle's thread ask for its own step (`decode(session, token, pos)`)
and runs whatever steps are waiting as one `_core.DecodeBatch` pass: the
weights are read once for all of them, each session's token attends its own
KV cache, and each caller gets back exactly the logits its session's own
decode() would give (tests/runtime/test_batching.py).

How steps are grouped, with no waiting for anyone longer than half a step:
  * a caller that finds no pass running leads: it takes every waiting step
    (its own included) and runs them as one pass; a handle alone therefore
    runs a pass of one, straight away;
  * a caller that finds a pass running queues its step; when the pass ends,
    the leader hands the lead to the first queued caller, which runs every
    step queued by then as the next pass, and the old leader returns;
  * before it takes the queue, a leader lets the sessions of the last pass
    come back: their callers are between two steps (sampling, streaming the
    text, the lifecycle's bookkeeping) and queue again a fraction of a
    millisecond later. Without this the handles fall into two groups that
    take turns (a pass of 1, then a pass of 3, measured with 4 handles: 28 of
    60 passes were of one step), reading the weights twice per token. The
    leader waits until each of them is queued, or for at most half of the
    last pass's time (`GATHER_SHARE`), whichever comes first: a handle that
    stopped generating, or does slow work between its steps (a slow on_token
    consumer), holds the others up by at most half a step, and a handle
    alone, whose own step is the only one expected, never waits. The leader
    sleeps on a condition of its own, notified once, by the last of those
    sessions to queue: a wake-up per returning caller was a GIL hand-off
    each, between two passes that only the last of them ends.
So a handle joining waits for no more than the pass in flight, one leaving
delays the others by at most half a step (none when it says so: a request
that ended and a closed session `withdraw`), and a leader never serves steps
beyond its own pass.

Errors stay each handle's own: a pass checks every entry before it runs any
(a bad token, a position past a context), and when it refuses, nothing was
evaluated, so each step of it runs alone and each caller gets its own result
or its own error.

One scheduler per shared model (reference/architectures/shared_forward.py);
a handle's session asks it for each decode step when its RuntimeConfig has
batch_decode (the default), so `generate` and `generate_next_token` of handles
on one model batch without either knowing.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

from ggufsm import _core
from ggufsm.spec.errors import GgufsmError


@dataclass
class _Step:
    session: Any  # _core.LlamaSession
    token: int
    pos: int
    done: threading.Event | None = None  # made only for a caller that waits (a leader never does)
    lead: bool = False  # set (with done) when this caller is handed the lead
    error: BaseException | None = None


GATHER_SHARE = 0.5  # a leader waits for the last pass's sessions at most this share of that pass's time
GATHER_MAX_S = 0.02  # and never longer than this (a pass slowed down by a loaded machine)


class DecodeScheduler:
    """One per model: callers on any thread ask for their session's decode step; waiting steps run as one pass."""

    def __init__(self, model: Any) -> None:
        self._batch = _core.DecodeBatch(model)
        self._lock = threading.Lock()
        self._queued = threading.Condition(self._lock)  # notified when a step is queued (tests wait on it)
        self._all_back = threading.Condition(self._lock)  # notified when the last of `_awaited` queues (the leader waits)
        self._queue: list[_Step] = []
        self._running = False
        self._awaited: set[int] = set()  # ids of the last pass's sessions not queued again yet
        self._last_pass_s = 0.0
        self.pass_sizes: Counter[int] = Counter()  # passes run, by their number of steps
        # Wall seconds the leaders spent running passes and gathering before them (`ggufsm bench batch --split`:
        # a step's time is these two and the callers' own work between their steps).
        self.pass_seconds = 0.0
        self.gather_seconds = 0.0

    def decode(self, session: Any, token: int, pos: int) -> Any:
        """The logits of `token` at `pos` in `session` (the session's own read-only buffer, as session.decode returns)."""
        with self._lock:
            lead = not self._running
            step = _Step(session, token, pos, None if lead else threading.Event())
            self._queue.append(step)
            self._queued.notify_all()
            if self._awaited:
                self._awaited.discard(id(session))
                if not self._awaited:
                    self._all_back.notify()
            self._running = True
        if step.done is not None:
            step.done.wait()  # until this step ran in someone's pass, or the lead is handed here
            lead = step.lead
        if lead:
            self._lead()
        if step.error is not None:
            raise step.error
        return session.logits

    def withdraw(self, session: Any) -> None:
        """`session` asks for no step until further notice (its request ended, it was closed): a leader
        gathering the last pass's sessions stops waiting for it. Without this a handle that finished
        held the others' next pass for the whole bound (half a pass)."""
        with self._lock:
            if id(session) in self._awaited:
                self._awaited.discard(id(session))
                if not self._awaited:
                    self._all_back.notify()

    def queued(self) -> int:
        """Steps waiting for the next pass."""
        with self._lock:
            return len(self._queue)

    def _lead(self) -> None:
        with self._lock:
            gathering = time.perf_counter()
            self._gather()
            steps, self._queue = self._queue, []
            started = time.perf_counter()
            self.gather_seconds += started - gathering
        try:
            self._run(steps)
        finally:
            with self._lock:
                self._awaited = {id(step.session) for step in steps}
                self._last_pass_s = time.perf_counter() - started
                self.pass_seconds += self._last_pass_s
                if self._queue:
                    successor = self._queue[0]
                    successor.lead = True
                    assert successor.done is not None  # it was queued behind a running pass
                    successor.done.set()
                else:
                    self._running = False
            for step in steps:
                if step.done is not None:
                    step.done.set()

    def _gather(self) -> None:
        """(Lock held.) Until every session of the last pass has queued its next step, or the bound passed."""
        if self._awaited:
            self._all_back.wait_for(lambda: not self._awaited,
                                    timeout=min(GATHER_SHARE * self._last_pass_s, GATHER_MAX_S))
        self._awaited = set()

    def _run(self, steps: list[_Step]) -> None:
        self.pass_sizes[len(steps)] += 1
        try:
            if len(steps) == 1:  # a handle alone: its own decode, nothing else in the way
                steps[0].session.decode(steps[0].token, steps[0].pos)
            else:
                self._batch.decode([s.session for s in steps], [s.token for s in steps], [s.pos for s in steps])
            return
        except GgufsmError as error:
            if len(steps) == 1:
                steps[0].error = error
                return
        except BaseException as error:  # noqa: BLE001 - handed to every caller of the pass, then re-raised by each
            for step in steps:
                step.error = error
            return
        # The pass refused one of its entries and evaluated nothing: each step alone, each its own outcome.
        for step in steps:
            try:
                step.session.decode(step.token, step.pos)
            except BaseException as error:  # noqa: BLE001 - each caller gets its own
                step.error = error
