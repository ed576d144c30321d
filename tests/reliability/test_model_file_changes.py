"""A model file truncated or overwritten under a loaded model is a named error for that handle, never a crash.

The weights are a read-only mapping of the file. The C++ core guards every
mapping (cpp/gguf/fault_guard.h): a page that faults because the file was cut
is replaced by zero pages, the mapping is marked, and the session, which
checks its file after each forward (size and modification time through the
descriptor it kept, and the mark), raises ModelUnavailable instead of
sampling what the forward made of those pages.
"""

from __future__ import annotations

import numpy as np
import pytest
from file_changes import overwrite_in_place, private_copy, truncate

from ggufsm.reference.model.gguf_file import open_gguf
from ggufsm.reference.runtime import Runtime
from ggufsm.spec.errors import ModelUnavailable
from ggufsm.spec.names import State


def loaded(path) -> Runtime:
    runtime = Runtime()
    runtime.init_runtime(n_ctx=256, n_threads=2)
    runtime.load_model(path)
    return runtime


def change_at_first_token(change):
    done = []

    def on_token(event):
        if not done:
            done.append(event)
            change()

    return on_token


def test_a_page_of_a_truncated_file_reads_as_zeros_and_marks_the_file_changed(tiny_model, tmp_path):
    path = private_copy(tiny_model, tmp_path)
    with open_gguf(path) as model:
        last = max(model.tensors.values(), key=lambda info: info.offset)
        view = model.tensor_data(last.name)
        assert model.core.changed() == ""
        truncate(path, model.data_offset)
        # Without the guard this read is SIGBUS and the process dies.
        assert int(np.asarray(view, dtype=np.uint64).sum()) == 0
        assert "truncated while mapped" in model.core.changed()


@pytest.mark.parametrize("change", ["truncate", "overwrite_in_place"])
def test_a_file_changed_during_a_generate_is_model_unavailable_for_that_handle(tiny_model, tmp_path, change):
    path = private_copy(tiny_model, tmp_path)
    other_bytes = tiny_model.read_bytes()[: len(tiny_model.read_bytes()) // 3]
    runtime = loaded(path)
    bystander = loaded(tiny_model)
    damage = (lambda: truncate(path, 4096)) if change == "truncate" else (lambda: overwrite_in_place(path, other_bytes))
    with pytest.raises(ModelUnavailable, match="changed after it was loaded"):
        runtime.generate("Hello there", 32, temperature=0.0, stop_at_eos=False, on_token=change_at_first_token(damage))
    # The table's model_intact branch: that handle is in RecoverableError with the error recorded.
    assert runtime.state == State.RecoverableError
    assert isinstance(runtime.last_error, ModelUnavailable)
    # The process, and every other handle, carry on; this one keeps saying why until it loads again.
    assert bystander.generate("Hello there", 4, temperature=0.0, stop_at_eos=False).token_ids.__len__() == 4
    runtime.reset()
    with pytest.raises(ModelUnavailable):
        runtime.generate("Hello", 2, temperature=0.0)
    runtime.free()
    assert runtime.state == State.Freed
    runtime.load_model(tiny_model)
    assert runtime.generate("Hello", 2, temperature=0.0, stop_at_eos=False).token_ids.__len__() == 2
    runtime.free()
    bystander.free()


def test_a_file_truncated_before_a_generate_is_model_unavailable_not_a_crash(tiny_model, tmp_path):
    path = private_copy(tiny_model, tmp_path)
    runtime = loaded(path)
    truncate(path)
    with pytest.raises(ModelUnavailable, match="changed after it was loaded"):
        runtime.generate("Hello", 4, temperature=0.0)
    runtime.free()


def test_a_handle_whose_file_changed_keeps_refusing_it_until_replace_model_reads_the_file_again(tiny_model, tmp_path):
    path = private_copy(tiny_model, tmp_path)
    runtime = loaded(path)
    intact = runtime.generate("Hello", 4, temperature=0.0, stop_at_eos=False).token_ids
    truncate(path)
    for _ in range(2):   # the model stays installed (the table's effects), and every forward refuses it
        with pytest.raises(ModelUnavailable, match="changed after it was loaded"):
            runtime.generate("Hello", 4, temperature=0.0, stop_at_eos=False)
        assert runtime.state == State.RecoverableError
    path.write_bytes(tiny_model.read_bytes())   # the file put back (a new mtime: the old mapping stays refused)
    runtime.replace_model(path)
    assert runtime.state == State.Ready   # the table keeps last_error on a replace: reset clears it
    assert runtime.generate("Hello", 4, temperature=0.0, stop_at_eos=False).token_ids == intact



@pytest.mark.parametrize("tokens_before", [0, 2])
def test_a_file_changed_between_two_next_tokens_is_model_unavailable_at_the_next_one(tiny_model, tmp_path,
                                                                                      tokens_before):
    """The first token of a request is sampled from the prompt's logits (no decode step of its own), so the
    guard itself asks the file; a later one's decode step refuses the changed file around its pass."""
    path = private_copy(tiny_model, tmp_path)
    runtime = loaded(path)
    runtime.generate("Hello", 0, temperature=0.0, stop_at_eos=False)
    for _ in range(tokens_before):
        runtime.generate_next_token()
    truncate(path)
    with pytest.raises(ModelUnavailable, match="changed after it was loaded"):
        runtime.generate_next_token()
    assert runtime.state == State.RecoverableError
    runtime.free()


def test_model_intact_asks_the_file_only_for_a_token_no_checked_pass_made(tiny_model, monkeypatch):
    """A next token whose decode step ran was checked around that pass, after the command began: the guard
    reuses that check. The first token of a request (no decode step) still asks the file."""
    runtime = loaded(tiny_model)
    model = runtime._model
    assert model is not None
    asked = []
    ask = model.file_changed
    monkeypatch.setattr(model, "file_changed", lambda: asked.append(1) or ask())
    runtime.generate("Hello", 0, temperature=0.0, stop_at_eos=False)
    asked.clear()
    runtime.generate_next_token()   # sampled from the prompt's logits
    assert len(asked) == 1
    runtime.generate_next_token()   # its decode step ran first
    runtime.generate_next_token()
    assert len(asked) == 1
    runtime.free()


# ─── model bytes given in memory (issue 12, item noticed after the native work) ──

def test_model_bytes_in_an_mmap_view_are_copied_so_truncating_the_file_behind_them_changes_nothing(tiny_model,
                                                                                                  tmp_path):
    import mmap

    path = private_copy(tiny_model, tmp_path)
    runtime = Runtime()
    runtime.init_runtime(n_ctx=256, n_threads=2)
    with open(path, "r+b") as file:
        mapped = mmap.mmap(file.fileno(), 0)
        runtime.load_model(memoryview(mapped))
        expected = runtime.generate("Hello", 8, temperature=0.0, stop_at_eos=False).token_ids
        truncate(path)   # a page of the caller's mapping past the new end would be SIGBUS in the forward
        assert runtime.generate("Hello", 8, temperature=0.0, stop_at_eos=False).token_ids == expected
        mapped.close()   # allowed: the runtime holds no export of the caller's buffer
    runtime.free()


def test_a_bytearray_written_after_the_load_does_not_change_the_loaded_model(tiny_model):
    data = bytearray(tiny_model.read_bytes())
    runtime = Runtime()
    runtime.init_runtime(n_ctx=256, n_threads=2)
    runtime.load_model(data)
    expected = runtime.generate("Hello", 8, temperature=0.0, stop_at_eos=False).token_ids
    data[len(data) // 2:] = bytes(len(data) - len(data) // 2)   # every weight in the second half zeroed
    data.extend(b"more")   # and resized: no export of it is held
    assert runtime.generate("Hello", 8, temperature=0.0, stop_at_eos=False).token_ids == expected


def test_immutable_bytes_are_borrowed_not_copied(tiny_model):
    from ggufsm.reference.model.gguf_file import immutable_bytes

    data = tiny_model.read_bytes()
    assert immutable_bytes(data) is data
    view = memoryview(data)
    assert immutable_bytes(view) is view
    assert isinstance(immutable_bytes(bytearray(data)), bytes)


def test_diagnostics_answer_while_another_thread_closes_the_model(tiny_model):
    """Queries take no lock: a diagnostics() that reads the model while a free or replace on another thread
    closes it (its file set to None) still answers, naming no sha256 (the 10-minute soak once caught an
    AttributeError here)."""
    from ggufsm.reference.runtime.diagnostics import snapshot

    runtime = loaded(tiny_model)
    resident = runtime._lifecycle.resident
    model = resident.model
    gguf, model.gguf = model.gguf, None   # what LoadedModel.close() leaves, mid-query
    try:
        resident.identity = None
        report = snapshot(resident, runtime.state, "test")
        assert report["model"]["sha256"] is None and "model_mapped" not in report["memory"]
    finally:
        model.gguf = gguf
    runtime.free()
