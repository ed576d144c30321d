"""A new session costs the pages its passes reach: its KV cache and scratch come zeroed from calloc, and
nothing writes them before a pass does (a 32-token prompt reaches 32 of the 512 scratch rows)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from ggufsm import _core
from ggufsm.reference.model.gguf_file import open_gguf

pytestmark = pytest.mark.real_model

NEW_SESSION = """
import gc, json, os, sys
from ggufsm import _core
from ggufsm.reference.model.gguf_file import open_gguf

def rss():
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

with open_gguf(sys.argv[1]) as gguf_file:
    model = _core.LlamaModel(gguf_file.core, 1, repack=False)
gc.collect()
before = rss()
session = _core.LlamaSession(model, 1024, 512)
print(json.dumps({"grown": rss() - before, "untouched": session.nbytes["scratch"] + session.nbytes["kv_cache"]}))
"""


def test_a_new_session_writes_none_of_its_scratch_or_cache(smollm2_path):
    # In a fresh process: in this one, the allocator hands back memory other tests freed, which calloc
    # must clear (and which is resident already or not, by chance).
    result = subprocess.run([sys.executable, "-c", NEW_SESSION, str(smollm2_path)],
                            capture_output=True, text=True, check=True)
    measured = json.loads(result.stdout.strip().splitlines()[-1])
    assert measured["untouched"] > 32 * 2**20
    assert measured["grown"] < 2 * 2**20, f"a new session made {measured['grown'] / 2**20:.1f} MiB resident"


def test_a_session_computes_the_same_logits_from_its_zeroed_scratch_as_a_used_one(smollm2_path):
    with open_gguf(smollm2_path) as gguf_file:
        model = _core.LlamaModel(gguf_file.core, 1)
    tokens = [1, 504, 3458, 6530, 17646, 25]
    fresh = _core.LlamaSession(model, 256, 512)
    used = _core.LlamaSession(model, 256, 512)
    used.prefill([7] * 200, 0)  # every scratch row it reaches written before
    assert fresh.prefill(tokens, 0).tobytes() == used.prefill(tokens, 0).tobytes()
