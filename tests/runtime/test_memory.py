"""Memory: free gives it back, and handles on one file share its mapped weights (real model)."""

from __future__ import annotations

import gc
import os

import pytest

from ggufsm.reference.runtime import Runtime

pytestmark = pytest.mark.real_model

PAGE = os.sysconf("SC_PAGE_SIZE")


def rss_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * PAGE


def load_generate_free(path) -> None:
    runtime = Runtime()
    runtime.init_runtime(n_ctx=256, n_threads=1)
    runtime.load_model(path)
    runtime.generate("The quick brown fox", 4, temperature=0.0)
    runtime.free()


def test_rss_stays_flat_over_twenty_load_free_cycles(smollm2_path):
    for _ in range(3):  # allocator pools and lazily built tables settle first
        load_generate_free(smollm2_path)
    gc.collect()
    settled = rss_bytes()
    for _ in range(20):
        load_generate_free(smollm2_path)
    gc.collect()
    grown = rss_bytes() - settled
    assert grown < 8 * 2**20, f"RSS grew {grown / 2**20:.1f} MiB over 20 load/free cycles"


def test_a_freed_runtime_holds_no_memory(smollm2_path):
    runtime = Runtime()
    runtime.init_runtime(n_ctx=256, n_threads=1)
    runtime.load_model(smollm2_path)
    assert runtime.diagnostics()["memory"]["total"] > 0
    runtime.free()
    assert runtime.diagnostics()["memory"]["total"] == 0


def test_handles_loading_one_file_share_its_weights(smollm2_path):
    file_size = smollm2_path.stat().st_size
    first = Runtime()
    first.init_runtime(n_ctx=128, n_threads=1)
    first.load_model(smollm2_path)
    first.generate("Hello", 2, temperature=0.0)
    gc.collect()
    before = rss_bytes()
    others = []
    for _ in range(3):
        runtime = Runtime()
        runtime.init_runtime(n_ctx=128, n_threads=1)
        runtime.load_model(smollm2_path)
        runtime.generate("Hello", 2, temperature=0.0)
        others.append(runtime)
    grown = rss_bytes() - before
    for runtime in [first, *others]:
        runtime.free()
    # Three private copies of the weights would add 3 x file_size; shared pages add only sessions.
    assert grown < file_size / 2, f"3 more handles added {grown / 2**20:.1f} MiB (file {file_size / 2**20:.1f} MiB)"
