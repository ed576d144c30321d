"""Decode steps of several sessions on one model, run together as one forward pass.

Several handles generating at once on the same model each need one decode step
per token, and a decode step is bound by reading the weights. `DecodeScheduler`
lets each handle's thread ask for its own step (`decode(session, token, pos)`)
and runs whatever steps are waiting as one `_core.DecodeBatch` pass: the
weights are read once for all of them, each session's token attends its own
KV cache, and each caller gets back exactly the logits its session's own
decode() would give (tests/runtime/test_batching.py).

How steps are grouped, with no timer and no waiting for anyone:
  * a caller that finds no pass running leads: it takes every waiting step
    (its own included) and runs them as one pass at once; a handle alone
    therefore runs a pass of one, straight away;
  * a caller that finds a pass running queues its step; when the pass ends,
    the leader hands the lead to the first queued caller, which runs every
    step queued by then as the next pass, and the old leader returns.
So a handle joining or leaving delays no one by more than the pass in flight,
and a leader never serves steps beyond its own pass.

Errors stay each handle's own: a pass checks every entry before it runs any
(a bad token, a position past a context), and when it refuses, nothing was
evaluated, so each step of it runs alone and each caller gets its own result
or its own error.

Not yet wired into the Runtime: handles load their own model today, and a
scheduler needs the handles of one model to share its `_core.LlamaModel`
(docs/benchmarks.md, "Handles that batch", says what is left).
"""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from ggufsm import _core
from ggufsm.spec.errors import GgufsmError


@dataclass
class _Step:
    session: Any  # _core.LlamaSession
    token: int
    pos: int
    done: threading.Event = field(default_factory=threading.Event)
    lead: bool = False  # set (with done) when this caller is handed the lead
    error: BaseException | None = None


class DecodeScheduler:
    """One per model: callers on any thread ask for their session's decode step; waiting steps run as one pass."""

    def __init__(self, model: Any) -> None:
        self._batch = _core.DecodeBatch(model)
        self._lock = threading.Lock()
        self._queued = threading.Condition(self._lock)  # notified when a step is queued (tests wait on it)
        self._queue: list[_Step] = []
        self._running = False
        self.pass_sizes: Counter[int] = Counter()  # passes run, by their number of steps

    def decode(self, session: Any, token: int, pos: int) -> Any:
        """The logits of `token` at `pos` in `session` (the session's own read-only buffer, as session.decode returns)."""
        step = _Step(session, token, pos)
        with self._lock:
            self._queue.append(step)
            self._queued.notify_all()
            lead = not self._running
            self._running = True
        if not lead:
            step.done.wait()  # until this step ran in someone's pass, or the lead is handed here
            lead = step.lead
        if lead:
            self._lead()
        if step.error is not None:
            raise step.error
        return session.logits

    def queued(self) -> int:
        """Steps waiting for the next pass."""
        with self._lock:
            return len(self._queue)

    def _lead(self) -> None:
        with self._lock:
            steps, self._queue = self._queue, []
        try:
            self._run(steps)
        finally:
            with self._lock:
                if self._queue:
                    successor = self._queue[0]
                    successor.lead = True
                    successor.done.set()
                else:
                    self._running = False
            for step in steps:
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
