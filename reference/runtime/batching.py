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
    alone, whose own step is the only one expected, never waits;
  * the last of those sessions to queue runs the gathered pass itself, on its
    own thread, which holds the GIL already and lets it go in the pass; the
    gathering leader sleeps until its own step has run (or the bound
    passes). Waking the leader to run it was one more thread hand-off
    between every two passes, 40-80 us under the GIL (stamps of 4 handles).
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

import _thread
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ggufsm import _core
from ggufsm.spec.errors import GgufsmError


class Wake:
    """What a sleeping caller waits on: set by whoever wakes it, consumed by its wait (the caller then reads the
    scheduler's state under its lock, so a wake that finds nothing new only sends it back to sleep). A raw lock
    held while unset: set() is one release and wait() one acquire, in C. A threading.Event is a Condition written
    in Python: between two passes of 4 handles its three set() calls ran 13-32 us each and each woken caller's
    wait() as long again, on the critical path (tools/batch_stamps.py)."""

    __slots__ = ("_unset",)

    def __init__(self) -> None:
        self._unset = _thread.allocate_lock()
        self._unset.acquire()

    def set(self) -> None:
        """Wake the waiter, or its next wait; a second set before that wait is the same wake."""
        try:
            self._unset.release()
        except RuntimeError:  # set already
            pass

    def wait(self, timeout: float | None) -> bool:
        """Until set (consuming it: True), or for at most timeout seconds (None: no bound)."""
        return self._unset.acquire(timeout=-1 if timeout is None else timeout)


@dataclass(slots=True)  # no __dict__: one object less a step, in the Python a batched token touches cold
class _Step:
    session: Any  # _core.LlamaSession
    token: int
    pos: int
    # Set when it ran, or when its caller is to lead; made only for a caller that sleeps (a handle alone never
    # does: it would be an allocation a token, in the Python a token touches cold).
    done: Wake | None = None
    lead: bool = False  # its caller is handed the lead (queued behind a pass, it is first when that pass ends)
    ran: bool = False  # it ran in a pass: its session's logits, or its error, are in
    error: BaseException | None = None


GATHER_SHARE = 0.5  # a leader waits for the last pass's sessions at most this share of that pass's time
GATHER_MAX_S = 0.02  # and never longer than this (a pass slowed down by a loaded machine)


class DecodeScheduler:
    """One per model: callers on any thread ask for their session's decode step; waiting steps run as one pass."""

    def __init__(self, model: Any) -> None:
        self._batch = _core.DecodeBatch(model)
        self._lock = threading.Lock()
        # Notified when a step is queued and when a leader starts gathering, while someone watches (`watch`).
        self._queued = threading.Condition(self._lock)
        self._watchers = 0
        self._queue: list[_Step] = []
        self._running = False  # a pass is running, or a leader is gathering the next one
        self._gatherer: _Step | None = None  # the step of the leader gathering, while it gathers
        self._gather_began = 0.0
        self._awaited: set[int] = set()  # ids of the last pass's sessions not queued again yet
        self._last_pass_s = 0.0
        self.pass_sizes: Counter[int] = Counter()  # passes run, by their number of steps
        # Wall seconds the passes took and the gathering before them (`ggufsm bench batch --split`:
        # a step's time is these two and the callers' own work between their steps).
        self.pass_seconds = 0.0
        self.gather_seconds = 0.0

    def decode(self, session: Any, token: int, pos: int, logits: Any = None) -> Any:
        """The logits of `token` at `pos` in `session` (the session's own read-only buffer, as session.decode returns):
        `logits` when given (a view of that buffer the caller keeps), else a new view of it."""
        step = _Step(session, token, pos)
        with self._lock:
            self._queue.append(step)
            if self._watchers:  # the check here, not in _notify: a frame less a step
                self._notify()
            self._awaited.discard(id(session))
            if not self._running:  # nothing running or gathering: this caller leads
                self._running = True
                steps = self._lead(step)
            elif self._gatherer is not None and not self._awaited:  # the last one a gathering leader waits for
                steps = self._take()
            else:
                steps = None
                step.done = Wake()
        while steps is None:  # until this step ran in someone's pass, or this caller runs one
            assert step.done is not None  # made, under the lock, before anyone could set it
            with self._lock:
                timeout = self._gather_bound() if self._gatherer is step else None
            step.done.wait(timeout)
            with self._lock:
                if step.ran:
                    break
                if step.lead:  # handed the lead: gather the last pass's sessions, or run at once
                    step.lead = False
                    steps = self._lead(step)
                elif self._gatherer is step:  # the gather's bound passed, or the last awaited session withdrew
                    steps = self._take()
        if steps:
            self._run_pass(steps)
        if step.error is not None:
            raise step.error
        return session.logits if logits is None else logits

    def withdraw(self, session: Any) -> None:
        """`session` asks for no step until further notice (its request ended, it was closed): a leader
        gathering the last pass's sessions stops waiting for it. Without this a handle that finished
        held the others' next pass for the whole bound (half a pass)."""
        with self._lock:
            if id(session) in self._awaited:
                self._awaited.discard(id(session))
                if not self._awaited and self._gatherer is not None and self._gatherer.done is not None:
                    self._gatherer.done.set()  # the gather is over: its leader runs the pass now

    def watch(self, until: Callable[[], bool]) -> None:
        """Wait until `until()` holds, asked again each time a step is queued and each time a leader starts
        gathering (tests hold a pass until the steps they expect are queued)."""
        with self._lock:
            self._watchers += 1
            try:
                self._queued.wait_for(until)
            finally:
                self._watchers -= 1

    def _notify(self) -> None:
        # A Condition's notify_all is Python even with no one waiting (an ownership check that takes and
        # releases the lock, a deque copy), for every step queued between passes: only when someone watches.
        if self._watchers:
            self._queued.notify_all()

    def queued(self) -> int:
        """Steps waiting for the next pass."""
        with self._lock:
            return len(self._queue)

    # ─── (lock held) who runs the next pass ──

    def _lead(self, step: _Step) -> list[_Step] | None:
        """`step`'s caller leads: the queued steps to run now, or None when it is to gather the last pass's
        sessions first (until the last of them queues, which then runs the pass, or the bound passes)."""
        if not self._awaited:
            return self._take()
        self._gatherer, self._gather_began = step, time.perf_counter()
        if step.done is None:
            step.done = Wake()
        self._notify()
        return None

    def _gather_bound(self) -> float:
        return max(0.0, min(GATHER_SHARE * self._last_pass_s, GATHER_MAX_S) - (time.perf_counter() - self._gather_began))

    def _take(self) -> list[_Step]:
        """Every queued step, for the pass the caller runs now; the gather, if any, ends."""
        if self._gatherer is not None:
            self.gather_seconds += time.perf_counter() - self._gather_began
            self._gatherer = None
        self._awaited = set()
        steps, self._queue = self._queue, []
        return steps

    # ─── running a pass ──

    def _run_pass(self, steps: list[_Step]) -> None:
        started = time.perf_counter()
        try:
            self._run(steps)
        finally:
            with self._lock:
                self._last_pass_s = time.perf_counter() - started
                self.pass_seconds += self._last_pass_s
                awaited = self._awaited = set()  # filled in the loop: a set comprehension is a frame of its own
                for step in steps:
                    step.ran = True
                    awaited.add(id(step.session))
                if self._queue:  # steps queued during the pass: the first one's caller leads the next
                    successor = self._queue[0]
                    assert successor.done is not None  # it was queued behind a running pass: it sleeps
                    successor.lead = True
                    successor.done.set()
                else:
                    self._running = False
            for step in steps:
                if step.done is not None:  # the callers that sleep; the one running this pass does not
                    step.done.set()

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
