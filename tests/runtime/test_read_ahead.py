"""A load reads its model file ahead in the core, once the file is open and mapped (cpp/gguf/read_ahead.h,
tests/gguf/test_read_ahead.py): nothing at the path that is not a regular file (a FIFO) is opened for it,
so nothing there can hold the load; it is the load's named error."""

from __future__ import annotations

import os

import pytest

from ggufsm.reference.runtime import Runtime
from ggufsm.spec.errors import ModelUnavailable


def test_a_fifo_given_as_the_model_is_still_the_loads_named_error(tmp_path):
    fifo = tmp_path / "fifo.gguf"
    os.mkfifo(fifo)
    runtime = Runtime()
    runtime.init_runtime(n_ctx=64, n_threads=1)
    with pytest.raises(ModelUnavailable, match="not a regular file"):
        runtime.load_model(str(fifo))
