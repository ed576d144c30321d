"""Runs whose every logit is compared bit for bit across a change of the weights' layout or pages (the output's
repack, tests/inference/test_output_repack.py; the repacked layers' collapse, tests/runtime/
test_repacked_collapse.py): a session's greedy passes, two sessions decoding as one batch, and the
process's thread ids, to check that freeing a model leaves none of its threads behind."""

from __future__ import annotations

import contextlib
import os

import numpy as np

from ggufsm import _core

N_CTX = 64
PROMPT = [1, 5, 9, 2, 7]


@contextlib.contextmanager
def switched_off(set_switch):
    """Models built inside are built with a process-wide load switch off (set_switch(False)), on again after."""
    set_switch(False)
    try:
        yield
    finally:
        set_switch(True)


def bits(a):
    return np.asarray(a).view(np.uint32).copy()


def greedy_run(model, steps: int, after_prompt=None):
    """A session's prompt and `steps` greedy decodes: the logits of each pass; after_prompt(), when given, is
    called between the prompt and the first decode (to wait for a background change to land)."""
    session = _core.LlamaSession(model, N_CTX)
    out = [bits(session.prefill(PROMPT, 0))]
    if after_prompt is not None:
        after_prompt()
    pos = len(PROMPT)
    for _ in range(steps):
        token = int(np.argmax(session.logits))
        out.append(bits(session.decode(token, pos)))
        pos += 1
    return out


def batched_run(model, steps: int):
    """Two sessions (different prompts) decoding as one batch: the logits of each step, both sessions."""
    sessions = [_core.LlamaSession(model, N_CTX) for _ in range(2)]
    tokens, positions = [], []
    for i, s in enumerate(sessions):
        prompt = PROMPT[: 3 + i]
        tokens.append(int(np.argmax(s.prefill(prompt, 0))))
        positions.append(len(prompt))
    batch = _core.DecodeBatch(model)
    out = []
    for _ in range(steps):
        batch.decode(sessions, tokens, positions)
        out.append([bits(s.logits) for s in sessions])
        tokens = [int(np.argmax(s.logits)) for s in sessions]
        positions = [p + 1 for p in positions]
    return out


def threads_now() -> set[str]:
    """The process's thread ids. A test compares sets, not counts: a thread an earlier test left may end
    meanwhile (CI saw 3 == 4), while a thread this test leaves behind is an id not there before."""
    return set(os.listdir("/proc/self/task"))
