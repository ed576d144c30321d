"""Fixtures the kernel tests share."""

from __future__ import annotations

import ctypes
import mmap

import numpy as np
import pytest

from ggufsm._core import kernels


@pytest.fixture
def restore_isa():
    """Puts the dispatched kernel variant back after a test forces another."""
    before = kernels.active_isa()
    yield
    kernels.force_isa(before)


# The page guard's parts (<sys/mman.h>: the mmap module exports only PROT_READ and PROT_WRITE).
PAGE = mmap.PAGESIZE
PROT_NONE = 0
LIBC = ctypes.CDLL(None, use_errno=True)
LIBC.mprotect.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]


@pytest.fixture
def before_a_guard_page():
    """place(a) -> a copy of the uint8 array `a` whose last byte is the last before a PROT_NONE page: a kernel
    that reads (rather than prefetches) one byte past its weights faults. Two guard pages, so even 8 KiB of
    read-ahead meets one."""
    maps = []

    def place(a: np.ndarray) -> np.ndarray:
        pages = -(-a.nbytes // PAGE) + 1
        region = mmap.mmap(-1, (pages + 2) * PAGE)
        maps.append(region)
        base = np.frombuffer(region, dtype=np.uint8)
        assert LIBC.mprotect(base.ctypes.data + pages * PAGE, 2 * PAGE, PROT_NONE) == 0, ctypes.get_errno()
        copy = base[pages * PAGE - a.nbytes:pages * PAGE].reshape(a.shape)
        copy[...] = a
        return copy

    yield place
    maps.clear()  # unmapped (guard pages included) once the test's views are gone
