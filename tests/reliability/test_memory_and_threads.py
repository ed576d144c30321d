"""Costs bounded by design: threads capped at the cores, one worker pool per process, memory given back,
metadata held at about its size in the file."""

from __future__ import annotations

import gc
import os
import tracemalloc

import pytest

from ggufsm import _core
from ggufsm.reference.model.gguf_file import open_gguf
from ggufsm.reference.runtime import Runtime
from ggufsm.reference.runtime.config import usable_cores

PAGE = os.sysconf("SC_PAGE_SIZE")


def rss_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * PAGE


def handle(path, n_threads: int = 2, n_ctx: int = 256) -> Runtime:
    runtime = Runtime()
    runtime.init_runtime(n_ctx=n_ctx, n_threads=n_threads)
    runtime.load_model(path)
    return runtime


def test_n_threads_above_the_cores_is_capped_at_them_with_a_note(tiny_model):
    runtime = handle(tiny_model, n_threads=1024)
    threads = runtime.diagnostics()["threads"]
    assert threads["used"] == usable_cores() == runtime._model.weights.n_threads
    assert "capped" in threads["note"] and "1024" in threads["note"]
    runtime.free()
    within = handle(tiny_model, n_threads=1)
    assert within.diagnostics()["threads"] == {"used": 1, "note": None}
    within.free()


def test_a_hundred_handles_share_one_worker_pool_and_dropping_them_drops_it(tiny_model):
    gc.collect()
    before = _core.shared_pool_count()
    handles = [handle(tiny_model, n_threads=2) for _ in range(100)]
    assert _core.shared_pool_count() <= before + 1
    for runtime in handles:
        runtime.free()
    del handles, runtime
    gc.collect()
    assert _core.shared_pool_count() <= before


def test_rss_returns_within_ten_percent_of_the_baseline_after_a_hundred_handles_are_dropped(tiny_model):
    for _ in range(3):  # allocator pools, lazily built tables and the shared file settle first
        warm = handle(tiny_model)
        warm.generate("Hello", 1, temperature=0.0)
        warm.free()
    del warm
    gc.collect()
    baseline = rss_bytes()
    handles = []
    for _ in range(100):
        runtime = handle(tiny_model)
        runtime.generate("Hello", 1, temperature=0.0)
        handles.append(runtime)
    held = rss_bytes()
    for runtime in handles:
        runtime.free()
    del handles, runtime
    gc.collect()
    after = rss_bytes()
    assert after <= baseline * 1.10, (f"RSS {after / 2**20:.1f} MiB after dropping 100 handles "
                                      f"(baseline {baseline / 2**20:.1f} MiB, {held / 2**20:.1f} MiB while held)")


@pytest.mark.real_model
def test_metadata_costs_at_most_twice_its_bytes_in_the_file(smollm2_path):
    tracemalloc.start()
    try:
        with open_gguf(smollm2_path) as model:
            python_bytes, _ = tracemalloc.get_traced_memory()
            header = model.core.header_bytes  # the validated copy of metadata and tensor infos, in C++
            assert python_bytes + header <= 2 * header, (python_bytes, header)
            assert len(model.metadata["tokenizer.ggml.tokens"]) == model.hyperparameters["n_vocab"]
    finally:
        tracemalloc.stop()
