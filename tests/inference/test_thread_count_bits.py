"""A one-session decode step gives the same bits on 1 thread as on 2 (cpp/forward/pass.cpp): every product row is
computed by one kernel call whatever thread runs it, the activations are quantized on the calling thread, and a
token's attention below 512 positions is never cut into segments (cpp/kernels/attention.cpp), below 256 it runs on
the calling thread. What the pool's threads read ahead between the products (ThreadPool's read-ahead) is prefetch
only and changes nothing. The steps here cross 256 positions, so both attention paths run."""

from __future__ import annotations

import numpy as np
import pytest

from ggufsm import _core
from ggufsm.reference.model.gguf_file import open_gguf

pytestmark = pytest.mark.real_model

PROMPT = 244
STEPS = 24  # positions 244 .. 267: attention on the calling thread, then on the pool


@pytest.mark.parametrize("name", ["smollm2", "gemma3"])
def test_one_session_decode_steps_are_bit_identical_on_one_and_two_threads(name):
    from real_models import real_model_path

    g = open_gguf(real_model_path(name))
    tokens = np.random.default_rng(3).integers(3, g.hyperparameters["n_vocab"], size=PROMPT + STEPS).tolist()
    logits = {}
    for threads in (1, 2):
        model = _core.LlamaModel(g.core, threads)
        session = _core.LlamaSession(model, PROMPT + STEPS + 16)
        session.prefill(tokens[:PROMPT], 0)
        steps = []
        for step in range(STEPS):
            steps.append(np.array(session.decode(tokens[PROMPT + step], PROMPT + step), copy=True))
        logits[threads] = np.stack(steps)
    assert np.array_equal(logits[1].view(np.uint32), logits[2].view(np.uint32))
