"""Handles that load one file share its map and tokenizer; the last one to let go releases it.

The sharing is the C++ core's one cache of open files (cpp/gguf/model.h): the same file gives the same
`_core.GgufModel`, and what Python derives from it (metadata, tokenizer) hangs off that object."""

from __future__ import annotations

import gc
import os
import shutil
import weakref

from ggufsm import _core
from ggufsm.reference.runtime import Runtime


def loaded(source) -> Runtime:
    runtime = Runtime()
    runtime.init_runtime(n_ctx=64, n_threads=1)
    runtime.load_model(source)
    return runtime


def greedy(runtime: Runtime) -> list[int]:
    return runtime.generate("Hello", 4, temperature=0.0).token_ids


def test_two_handles_on_one_file_hold_one_map_until_both_are_freed(tiny_model):
    first, second = loaded(tiny_model), loaded(tiny_model)
    assert first._model.file is second._model.file
    shared = weakref.ref(first._model.file)
    first.free()
    assert greedy(second) == greedy(loaded(tiny_model))   # the other handle still runs from the shared map
    second.free()
    gc.collect()
    assert shared() is None


def test_a_runtime_dropped_without_free_lets_its_file_go(tiny_model):
    runtime = loaded(tiny_model)
    shared = weakref.ref(runtime._model.file)
    del runtime
    gc.collect()
    assert shared() is None


def test_replacing_a_model_by_the_same_file_keeps_its_output(tiny_model):
    runtime = loaded(tiny_model)
    before = greedy(runtime)
    shared = runtime._model.file
    runtime.replace_model(tiny_model)
    assert runtime._model.file is shared
    assert greedy(runtime) == before
    runtime.free()


def test_a_file_replaced_on_disk_is_opened_afresh(tiny_model, other_tiny_model, tmp_path):
    path = tmp_path / "model.gguf"
    shutil.copyfile(tiny_model, path)
    first = loaded(path)
    # Replaced the way tools write files (a new file renamed over the old): the first handle keeps its map.
    shutil.copyfile(other_tiny_model, tmp_path / "model.gguf.new")
    os.replace(tmp_path / "model.gguf.new", path)
    second = loaded(path)
    assert first._model.file is not second._model.file
    assert greedy(first) == greedy(loaded(tiny_model))
    assert greedy(second) == greedy(loaded(other_tiny_model))


def test_models_given_as_bytes_are_never_shared(tiny_model):
    data = tiny_model.read_bytes()
    first, second = loaded(data), loaded(data)
    assert first._model.file is not second._model.file


def test_the_shared_file_is_the_cpp_cores_one_object_for_that_file(tiny_model):
    first, second = loaded(tiny_model), loaded(tiny_model)
    assert _core.open_gguf_path(str(tiny_model)) is first._model.file
    assert first._model.tokenizer is second._model.tokenizer
    assert first._model.gguf.metadata is second._model.gguf.metadata
    first.free()
    second.free()
