"""Sessions decoding as one batch beside twins decoding alone: the check the batching tests share."""

from __future__ import annotations

import numpy as np

from ggufsm import _core


def batch_decodes_as_alone(model, prompts, n_ctx: int, steps: int, label: str = "", batch=None) -> None:
    """One session per prompt decoding as one batch, and a twin of each decoding alone, give the same logits
    to the last bit at every step (greedy tokens taken from the twins). `batch`: a DecodeBatch to reuse."""
    together = [_core.LlamaSession(model, n_ctx) for _ in prompts]
    alone = [_core.LlamaSession(model, n_ctx) for _ in prompts]
    tokens, positions = [], []
    for t, a, prompt in zip(together, alone, prompts, strict=True):
        t.prefill(prompt, 0)
        tokens.append(int(np.argmax(a.prefill(prompt, 0))))
        positions.append(len(prompt))
    batch = batch if batch is not None else _core.DecodeBatch(model)
    for step in range(steps):
        batch.decode(together, tokens, positions)
        for i, (t, a) in enumerate(zip(together, alone, strict=True)):
            expected = a.decode(tokens[i], positions[i])
            assert np.array_equal(t.logits.view(np.uint32), expected.view(np.uint32)), \
                f"{label}session {i} at position {positions[i]}, step {step}"
        tokens = [int(np.argmax(a.logits)) for a in alone]
        positions = [p + 1 for p in positions]
