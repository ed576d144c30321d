"""A session's KV cache starts as zeros taken from calloc, not an eager fill (cpp/forward/forward.h,
ZeroedAllocator): whatever an earlier session left in the memory it freed never reaches a later one."""

from __future__ import annotations

import gc

import numpy as np
import pytest

from ggufsm.conformance.fixtures.tiny_models import TinyLlamaSpec, write_tiny_llama
from ggufsm.reference.architectures import load_tensors
from ggufsm.reference.architectures.weights import read_tensors

TOKENS = [5, 17, 3, 88, 42, 0, 95, 11, 64, 7, 30, 2]


@pytest.fixture(scope="module")
def fused(tmp_path_factory):
    return load_tensors(read_tensors(write_tiny_llama(tmp_path_factory.mktemp("tiny") / "tiny.gguf", TinyLlamaSpec())),
                        n_threads=2, engine="fused")


# 64: a cache small enough to come from the heap, where freed memory is handed out again;
# 1 << 16: large enough that malloc maps fresh pages for it.
@pytest.mark.parametrize("n_ctx", [64, 1 << 16])
def test_a_new_session_computes_the_same_logits_whatever_a_freed_session_left_in_its_memory(fused, n_ctx):
    first = np.array(fused.new_session(n_ctx).prefill(TOKENS))
    for round_ in range(3):
        dirty = fused.new_session(n_ctx)
        dirty.prefill([(7 * i + round_) % 90 for i in range(48)], 0)  # every layer's cache rows written
        del dirty
        gc.collect()
        again = np.array(fused.new_session(n_ctx).prefill(TOKENS))
        assert np.array_equal(again, first)
