"""A load asks the kernel to read its model file ahead (reference/runtime/loading.py, read_ahead): advice
only, so nothing at the path (a FIFO, a folder, nothing at all) can hold the load there or fail it there."""

from __future__ import annotations

import os

import pytest

from ggufsm.reference.runtime import Runtime
from ggufsm.reference.runtime.loading import read_ahead
from ggufsm.spec.errors import ModelUnavailable


def test_read_ahead_of_what_is_no_model_file_returns_without_blocking_or_raising(tmp_path):
    fifo = tmp_path / "fifo.gguf"
    os.mkfifo(fifo)  # opened for reading without a writer, a blocking open would wait forever
    for source in (fifo, tmp_path, tmp_path / "missing.gguf", str(tmp_path / "missing.gguf"), b"GGUF", "a\0b"):
        read_ahead(source)


def test_a_fifo_given_as_the_model_is_still_the_loads_named_error(tmp_path):
    fifo = tmp_path / "fifo.gguf"
    os.mkfifo(fifo)
    runtime = Runtime()
    runtime.init_runtime(n_ctx=64, n_threads=1)
    with pytest.raises(ModelUnavailable, match="not a regular file"):
        runtime.load_model(str(fifo))

