"""The decode prefetch hint (the pool fetches the next product's first bytes while its threads wait) moves bytes
into the caches and never changes a number."""

from __future__ import annotations

import numpy as np
import pytest

from ggufsm import _core
from ggufsm.conformance.fixtures.tiny_models import write_tiny_gemma3, write_tiny_llama
from ggufsm.reference.model.gguf_file import open_gguf

TOKENS = [5, 17, 3, 88, 42, 0, 7, 9, 61]


def run(model):
    session = _core.LlamaSession(model, 32)
    out = [session.prefill(TOKENS[:4], 0).copy()]
    out += [session.decode(t, 4 + i).copy() for i, t in enumerate(TOKENS[4:])]
    return out


@pytest.mark.parametrize("threads", [1, 2, 3])
@pytest.mark.parametrize("write", [write_tiny_llama, write_tiny_gemma3])
def test_decode_logits_are_bit_identical_with_the_prefetch_hint_on_and_off(write, threads, tmp_path):
    model = _core.LlamaModel(open_gguf(write(tmp_path / "m.gguf")).core, threads)
    default = _core.decode_prefetch_bytes()
    assert default > 0, "the hint is on by default"
    try:
        with_hint = run(model)
        _core.set_decode_prefetch_bytes(0)
        without = run(model)
        _core.set_decode_prefetch_bytes(1 << 20)  # more than a tiny model's matrices: clipped to each part's rows
        large = run(model)
    finally:
        _core.set_decode_prefetch_bytes(default)
    for a, b, c in zip(with_hint, without, large, strict=True):
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(a, c)
