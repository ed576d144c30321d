"""A new session costs the pages its passes reach: its KV cache and scratch come zeroed from calloc, and
nothing writes them before a pass does (a 32-token prompt reaches 32 of the 512 scratch rows)."""

from __future__ import annotations

import gc
import os

import pytest

from ggufsm import _core
from ggufsm.reference.model.gguf_file import open_gguf

pytestmark = pytest.mark.real_model

PAGE = os.sysconf("SC_PAGE_SIZE")


def rss_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * PAGE


def test_a_new_session_writes_none_of_its_scratch_or_cache(smollm2_path):
    with open_gguf(smollm2_path) as gguf_file:
        model = _core.LlamaModel(gguf_file.core, 1, repack=False)
    gc.collect()
    before = rss_bytes()
    session = _core.LlamaSession(model, 1024, 512)
    grown = rss_bytes() - before
    untouched = session.nbytes["scratch"] + session.nbytes["kv_cache"]
    assert untouched > 32 * 2**20
    assert grown < 2 * 2**20, f"a new session made {grown / 2**20:.1f} MiB resident"


def test_a_session_computes_the_same_logits_from_its_zeroed_scratch_as_a_used_one(smollm2_path):
    with open_gguf(smollm2_path) as gguf_file:
        model = _core.LlamaModel(gguf_file.core, 1)
    tokens = [1, 504, 3458, 6530, 17646, 25]
    fresh = _core.LlamaSession(model, 256, 512)
    used = _core.LlamaSession(model, 256, 512)
    used.prefill([7] * 200, 0)  # every scratch row it reaches written before
    assert fresh.prefill(tokens, 0).tobytes() == used.prefill(tokens, 0).tobytes()
