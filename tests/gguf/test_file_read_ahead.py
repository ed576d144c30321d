"""Opening a model file reads it into the page cache ahead of the load, on a thread of the core's
(cpp/gguf/read_ahead.h): all of a cold file, none of a warm one, nothing of a file small enough for one
read-around; advice only, so a file that shrinks under it or is closed at once is still the load's
named error (its message) or nothing at all; and the pages of the matrices the repack copied are not mapped again
behind the repack's drop."""

from __future__ import annotations

import gc
import os

import pytest
from gguf import GGMLQuantizationType

from ggufsm import _core
from ggufsm.conformance.fixtures.tiny_models import write_tiny_llama
from ggufsm.reference.bench.first_token import evict, resident_share
from ggufsm.reference.model.gguf_file import open_gguf

WINDOW = 8 << 20  # read_ahead.h's kWindow: a file of at most one window starts no read-ahead


def large_model(path, matrix_type=GGMLQuantizationType.F32, n_ff=32768):
    """A tiny llama whose feed-forward matrices make the file several read-ahead windows long."""
    written = write_tiny_llama(path, seed=3, n_ff=n_ff, matrix_type=matrix_type)
    assert written.stat().st_size > 2 * WINDOW
    return written


def cold(path) -> None:
    evict(path)
    if resident_share(path) > 0.01:
        pytest.skip(f"{path.parent} keeps its files in memory (tmpfs?): no cold file to read")


@pytest.fixture
def large_f32(tmp_path):
    return large_model(tmp_path / "large.gguf")


def test_a_cold_file_is_read_into_the_page_cache_whole_once_opened(large_f32):
    cold(large_f32)
    with open_gguf(large_f32) as model:
        model.core.finish_read_ahead()
        assert model.core.read_ahead_windows > 0
        assert resident_share(large_f32) > 0.99


def test_a_warm_file_is_left_to_the_load(large_f32):
    with large_f32.open("rb") as f:
        while f.read(1 << 24):
            pass
    assert resident_share(large_f32) == 1.0
    with open_gguf(large_f32) as model:
        model.core.finish_read_ahead()
        assert model.core.read_ahead_windows == 0


def test_a_file_within_one_window_starts_no_read_ahead(tmp_path):
    path = write_tiny_llama(tmp_path / "small.gguf", seed=1)
    cold(path)
    with open_gguf(path) as model:
        model.core.finish_read_ahead()
        assert model.core.read_ahead_windows == 0


def test_a_file_closed_while_it_is_read_ahead_is_closed(tmp_path):
    path = large_model(tmp_path / "closed.gguf")
    for _ in range(3):
        cold(path)
        with open_gguf(path):
            pass  # closed at once: the read-ahead is stopped before the mapping goes
        gc.collect()
        assert _core.open_model_count() == 0


def test_a_file_that_shrinks_under_the_read_ahead_is_the_loads_named_error(tmp_path):
    path = large_model(tmp_path / "shrinks.gguf")
    cold(path)
    with open_gguf(path) as model:
        os.truncate(path, WINDOW // 2)
        model.core.finish_read_ahead()  # returns: the populate of a page past the end fails, it raises no SIGBUS
        assert "changed after it was loaded" in model.core.changed()


def test_the_repacked_matrices_pages_are_not_mapped_again_after_the_repack(tmp_path):
    path = large_model(tmp_path / "q4_0.gguf", GGMLQuantizationType.Q4_0, n_ff=98304)
    cold(path)
    with open_gguf(path) as model:
        forward = _core.LlamaModel(model.core, 2)
        model.core.finish_read_ahead()
        mapped = file_mapping_rss(path)
        assert forward.weights_repacked > 2 * WINDOW
        # What stays mapped is the header and the tensors read in place (the embedding, the norms).
        assert mapped <= path.stat().st_size - forward.weights_repacked + 64 * os.sysconf("SC_PAGE_SIZE")
        del forward


def file_mapping_rss(path) -> int:
    """Bytes of this process's mappings of `path` resident in its page tables (/proc/self/smaps)."""
    total, inside = 0, False
    with open("/proc/self/smaps") as smaps:
        for line in smaps:
            fields = line.split()
            if "-" in fields[0] and len(fields) >= 5:  # a mapping's first line: range, perms, offset, dev, inode, path
                inside = len(fields) >= 6 and fields[5] == str(path)
            elif inside and fields[0] == "Rss:":
                total += int(fields[1]) * 1024
    return total
