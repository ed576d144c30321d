"""The read-ahead keeps a bounded distance ahead of what the load has read (cpp/gguf/read_ahead.h): the reader
never populates a window that ends past the load's furthest read_through plus its distance; it waits there (on an
event, not a poll) until the load moves on, ends at its bound when finished without a stop, at once when stopped, and
without a fault when the file shrinks under it. The load reports its progress: the parse (the header), the repack's
chunks and the scans, and the load's end stops the reader.

The probe (`_core.ReadAheadProbe`) is a read-ahead over a mapping the test makes, with a small window, driven by a
progress of the test's own; `wait_idle` returns once the reader waits at the bound of the last read_through (or has
ended), so no assertion here depends on time."""

from __future__ import annotations

import ctypes
import mmap
import os

import numpy as np
import pytest
from gguf import GGMLQuantizationType

from ggufsm import _core
from ggufsm.conformance.fixtures.tiny_models import write_tiny_llama
from ggufsm.reference.bench.first_token import evict, resident_share
from ggufsm.reference.model.gguf_file import open_gguf
from ggufsm.reference.runtime import Runtime

WINDOW = 64 << 10
WINDOWS = 32
DISTANCE = 4 * WINDOW
FILE_WINDOW = 8 << 20  # read_ahead.h's kWindow, the window of a model file's read-ahead
PROT_NONE = 0  # <sys/mman.h> (the mmap module exports only PROT_READ and PROT_WRITE)
LIBC = ctypes.CDLL(None, use_errno=True)
LIBC.mprotect.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]


@pytest.fixture
def mapped(tmp_path):
    """A file of WINDOWS windows, mapped read-only; closed after the test."""
    path = tmp_path / "bytes.bin"
    path.write_bytes(os.urandom(WINDOWS * WINDOW))
    with path.open("rb") as f:
        mapping = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    yield path, mapping
    mapping.close()


@pytest.fixture
def file_distance():
    """Files opened in the test read ahead at most one window past their loads' reads."""
    previous = _core.set_read_ahead_distance(FILE_WINDOW)
    yield FILE_WINDOW
    _core.set_read_ahead_distance(previous)


def within_bound(state) -> bool:
    return state["handled_to"] <= state["read_to"] + state["distance"]


def test_the_reader_stops_at_the_distance_past_the_loads_reads_until_the_load_moves_on(mapped):
    _, mapping = mapped
    probe = _core.ReadAheadProbe(mapping, WINDOW, DISTANCE)
    probe.wait_idle()
    assert probe.state["handled_to"] == DISTANCE  # nothing read yet: one distance from the start
    for read_to in (WINDOW + 100, 9 * WINDOW, 9 * WINDOW + WINDOW // 2, 20 * WINDOW - 1):
        probe.read_through(read_to)
        probe.wait_idle()
        state = probe.state
        assert within_bound(state)
        # Every whole window below the bound is read: the reader does not stop short either.
        assert state["handled_to"] == (read_to + DISTANCE) // WINDOW * WINDOW
    probe.read_through(WINDOWS * WINDOW)
    probe.wait_idle()
    assert probe.state["handled_to"] == WINDOWS * WINDOW


def cold(path) -> None:
    evict(path)
    if resident_share(path) > 0.01:
        pytest.skip(f"{path.parent} keeps its files in memory (tmpfs?): no cold file to read")


def test_a_cold_file_is_read_in_only_up_to_the_bound(mapped):
    path, mapping = mapped
    cold(path)
    probe = _core.ReadAheadProbe(mapping, WINDOW, DISTANCE)
    probe.read_through(10 * WINDOW)
    probe.wait_idle()
    state = probe.state
    assert state["windows_read"] > 0
    assert state["handled_to"] == 10 * WINDOW + DISTANCE
    assert within_bound(state)


def test_a_progress_lower_than_before_moves_nothing(mapped):
    _, mapping = mapped
    probe = _core.ReadAheadProbe(mapping, WINDOW, DISTANCE)
    probe.read_through(12 * WINDOW)
    probe.read_through(3 * WINDOW)
    probe.wait_idle()
    assert probe.state["read_to"] == 12 * WINDOW
    assert probe.state["handled_to"] == 16 * WINDOW


def test_finishing_without_a_stop_ends_at_the_bound_rather_than_waiting_there(mapped):
    _, mapping = mapped
    probe = _core.ReadAheadProbe(mapping, WINDOW, DISTANCE)
    probe.read_through(5 * WINDOW)
    probe.finish(False)  # returns: nothing will move the bound, and the reader does not wait for it
    assert probe.state["handled_to"] == 5 * WINDOW + DISTANCE
    probe.read_through(WINDOWS * WINDOW)  # after the end: changes nothing, wakes no one
    probe.wait_idle()
    assert probe.state["handled_to"] == 5 * WINDOW + DISTANCE


def test_a_reader_stopped_or_dropped_at_once_ends_within_its_bound(mapped):
    _, mapping = mapped
    for _ in range(20):
        probe = _core.ReadAheadProbe(mapping, WINDOW, DISTANCE)
        probe.finish(True)
        assert within_bound(probe.state)
        dropped = _core.ReadAheadProbe(mapping, WINDOW, DISTANCE)
        del dropped  # made and dropped at once: its destructor stops it


def test_a_distance_below_one_window_is_one_window(mapped):
    _, mapping = mapped
    probe = _core.ReadAheadProbe(mapping, WINDOW, 1)
    probe.wait_idle()
    assert probe.state["distance"] == WINDOW
    assert probe.state["handled_to"] == WINDOW


def test_a_file_that_shrinks_under_the_reader_ends_it_without_a_fault(mapped):
    path, mapping = mapped
    cold(path)  # (a warm file's pages past its new end read as resident to mincore here, and are skipped, not read)
    probe = _core.ReadAheadProbe(mapping, WINDOW, DISTANCE)
    probe.wait_idle()
    os.truncate(path, 2 * WINDOW)
    probe.read_through(WINDOWS * WINDOW)
    probe.wait_idle()  # returns: the populate past the new end fails (EFAULT), it raises no SIGBUS
    probe.finish(False)
    assert probe.state["handled_to"] == DISTANCE
    assert not probe.state["running"]


def test_a_buffer_that_ends_before_a_guard_page_and_starts_mid_page_is_read_to_its_last_byte_and_no_further():
    # Its start is not page-aligned (madvise wants one), its size no multiple of the window, and the two pages after
    # its last byte are PROT_NONE: populating one of them would fail the reader, reading one would fault.
    size = 10 * WINDOW + WINDOW // 2 + 100
    pages = -(-size // mmap.PAGESIZE) + 1
    region = mmap.mmap(-1, (pages + 2) * mmap.PAGESIZE)
    base = np.frombuffer(region, dtype=np.uint8)
    assert LIBC.mprotect(base.ctypes.data + pages * mmap.PAGESIZE, 2 * mmap.PAGESIZE, PROT_NONE) == 0
    buffer = base[pages * mmap.PAGESIZE - size:pages * mmap.PAGESIZE]
    buffer[...] = 7
    probe = _core.ReadAheadProbe(buffer, WINDOW, 4 * WINDOW)
    probe.read_through(size)
    probe.wait_idle()
    assert probe.state["handled_to"] == size
    assert not probe.state["running"]
    del probe, buffer, base


def test_the_automatic_distance_is_at_least_a_window_and_at_most_512_mib():
    assert FILE_WINDOW <= _core.read_ahead_distance() <= 512 << 20


def large_q4_0(path):
    """A tiny llama several read-ahead windows long, its layer matrices repacked at load."""
    written = write_tiny_llama(path, seed=3, n_ff=98304, matrix_type=GGMLQuantizationType.Q4_0)
    assert written.stat().st_size > 2 * FILE_WINDOW
    return written


def test_an_opened_file_is_read_ahead_only_its_distance_past_the_header(tmp_path, file_distance):
    path = large_q4_0(tmp_path / "model.gguf")
    with open_gguf(path) as model:
        model.core.finish_read_ahead(False)
        state = model.core.read_ahead_state
        assert state["distance"] == file_distance
        assert 0 < state["read_to"] < FILE_WINDOW  # the header, which the parse read
        assert within_bound(state)
        assert state["handled_to"] < path.stat().st_size
        assert not state["running"]


def test_the_repack_moves_the_read_ahead_along_the_file(tmp_path, file_distance):
    path = large_q4_0(tmp_path / "model.gguf")
    with open_gguf(path) as model:
        forward = _core.LlamaModel(model.core, 2)
        state = model.core.read_ahead_state
        # The repack's chunks reported reads up to its last matrices, far past the header's bound; then it stopped
        # the reader, before dropping the pages it copied.
        assert state["read_to"] > 2 * FILE_WINDOW
        assert not state["running"]
        assert within_bound(state)
        del forward


def test_a_load_ends_the_read_ahead_once_done(tmp_path, file_distance):
    path = write_tiny_llama(tmp_path / "model.gguf", seed=3, n_ff=32768)  # F32: nothing repacked, nothing stops it early
    runtime = Runtime()
    runtime.init_runtime(n_ctx=64, n_threads=1)
    runtime.load_model(str(path))
    with open_gguf(path) as model:  # the runtime's file, shared
        state = model.core.read_ahead_state
        assert not state["running"]
        # The finite check read every tensor, telling the reader as it went.
        assert state["read_to"] > path.stat().st_size - 4 * FILE_WINDOW
    runtime.free()
