"""open_gguf: what it returns for a valid file, from a path or from bytes, and the
errors for a path that is not a readable file."""

from __future__ import annotations

import os
import struct

import gguf
import numpy as np
import pytest

from ggufsm.conformance.fixtures.tiny_models import write_tiny_llama
from ggufsm.reference.model.gguf_file import open_gguf
from ggufsm.spec.errors import InvalidInput, InvalidModel, InvalidState, ModelUnavailable


@pytest.fixture(scope="module")
def tiny_path(tmp_path_factory):
    return write_tiny_llama(tmp_path_factory.mktemp("gguf") / "tiny.gguf", seed=5,
                            matrix_type=gguf.GGMLQuantizationType.Q8_0)


def reader_metadata(reader: gguf.GGUFReader) -> dict:
    return {key: field.contents() for key, field in reader.fields.items() if not key.startswith("GGUF.")}


def test_metadata_equals_what_gguf_reader_reads(tiny_path):
    with open_gguf(tiny_path) as model:
        metadata = model.metadata
    expected = reader_metadata(gguf.GGUFReader(tiny_path))
    assert list(metadata) == list(expected)
    assert metadata == expected


def test_tensor_infos_and_bytes_equal_what_gguf_reader_reads(tiny_path):
    reader = gguf.GGUFReader(tiny_path)
    with open_gguf(tiny_path) as model:
        assert list(model.tensors) == [tensor.name for tensor in reader.tensors]
        for tensor in reader.tensors:
            info = model.tensors[tensor.name]
            assert (info.name, int(info.type), info.shape, info.offset, info.nbytes) == (
                tensor.name, int(tensor.tensor_type), tuple(int(n) for n in tensor.shape),
                int(tensor.data_offset), int(tensor.n_bytes))
            assert np.array_equal(model.tensor_data(tensor.name), tensor.data.view(np.uint8).reshape(-1))


def test_the_file_describes_itself(tiny_path):
    with open_gguf(tiny_path) as model:
        assert model.architecture == "llama"
        assert model.file_size == tiny_path.stat().st_size
        assert model.path == tiny_path
        assert model.version == 3
        assert model.hyperparameters["n_vocab"] == len(model.metadata["tokenizer.ggml.tokens"])
        assert model.hyperparameters["output_tied"] is True


def test_bytes_give_the_same_model_as_the_path(tiny_path):
    data = tiny_path.read_bytes()
    with open_gguf(tiny_path) as from_path, open_gguf(data) as from_bytes:
        assert from_bytes.path is None
        assert from_bytes.metadata == from_path.metadata
        assert from_bytes.tensors == from_path.tensors
        for name in from_path.tensors:
            assert np.array_equal(from_bytes.tensor_data(name), from_path.tensor_data(name))


def test_tensor_data_is_a_read_only_view_into_the_file_not_a_copy(tiny_path):
    with open_gguf(tiny_path) as model:
        name, info = next(iter(model.tensors.items()))
        view = model.tensor_data(name)
        assert view.dtype == np.uint8 and view.shape == (info.nbytes,)
        assert not view.flags.writeable and not view.flags.owndata
        with pytest.raises(ValueError):
            view[0] = 1


def test_bytes_input_is_borrowed_and_a_buffer_that_can_change_is_copied(tiny_path):
    """`bytes` cannot change under the model: borrowed. A bytearray (or a view of an mmap) can: copied once
    (docs/reliability.md, "Model bytes given in memory")."""
    data = tiny_path.read_bytes()
    for source, borrowed in ((data, True), (bytearray(data), False)):
        with open_gguf(source) as model:
            info = next(iter(model.tensors.values()))
            address = model.tensor_data(info.name).__array_interface__["data"][0]
            assert (address == np.frombuffer(source, np.uint8).ctypes.data + info.offset) is borrowed


def test_two_opens_of_one_file_share_one_mapping(tiny_path):
    with open_gguf(tiny_path) as first, open_gguf(tiny_path) as second:
        name = next(iter(first.tensors))
        assert first.tensor_data(name).ctypes.data == second.tensor_data(name).ctypes.data


def test_a_rewritten_file_gets_a_new_mapping(tmp_path):
    path = write_tiny_llama(tmp_path / "model.gguf", seed=1)
    with open_gguf(path) as before:
        old = before.tensor_data("token_embd.weight").copy()
        write_tiny_llama(tmp_path / "other.gguf", seed=2).replace(path)
        with open_gguf(path) as after:
            assert not np.array_equal(after.tensor_data("token_embd.weight"), old)
            assert np.array_equal(before.tensor_data("token_embd.weight"), old)


def test_views_outlive_close_but_the_closed_file_hands_out_no_more(tiny_path):
    model = open_gguf(tiny_path)
    view = model.tensor_data("token_embd.weight")
    expected = view.copy()
    model.close()
    assert model.closed
    assert np.array_equal(view, expected)
    with pytest.raises(InvalidState, match="closed"):
        model.tensor_data("token_embd.weight")


def test_an_unknown_tensor_name_is_invalid_input(tiny_path):
    with open_gguf(tiny_path) as model, pytest.raises(InvalidInput, match="no_such.weight"):
        model.tensor_data("no_such.weight")


def test_gguf_version_2_reads_like_version_3(tiny_path):
    data = bytearray(tiny_path.read_bytes())
    struct.pack_into("<I", data, 4, 2)
    with open_gguf(bytes(data)) as v2, open_gguf(tiny_path) as v3:
        assert v2.version == 2
        assert v2.metadata == v3.metadata and v2.tensors == v3.tensors


def test_a_missing_path_is_model_unavailable(tmp_path):
    with pytest.raises(ModelUnavailable, match="no model file at this path"):
        open_gguf(tmp_path / "absent.gguf")


def test_a_directory_is_model_unavailable(tmp_path):
    with pytest.raises(ModelUnavailable, match="directory"):
        open_gguf(tmp_path)


def test_a_path_that_is_not_a_regular_file_is_model_unavailable(tmp_path):
    fifo = tmp_path / "pipe.gguf"
    os.mkfifo(fifo)
    with pytest.raises(ModelUnavailable, match="not a regular file"):
        open_gguf(fifo)


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their mode")
def test_an_unreadable_file_is_model_unavailable(tiny_path, tmp_path):
    locked = tmp_path / "locked.gguf"
    locked.write_bytes(tiny_path.read_bytes())
    locked.chmod(0)
    with pytest.raises(ModelUnavailable, match="cannot open"):
        open_gguf(locked)


def test_an_empty_file_is_an_invalid_model_not_a_crash(tmp_path):
    empty = tmp_path / "empty.gguf"
    empty.write_bytes(b"")
    with pytest.raises(InvalidModel, match="not a GGUF file"):
        open_gguf(empty)


def test_a_source_that_is_neither_path_nor_bytes_is_invalid_input():
    with pytest.raises(InvalidInput, match="int"):
        open_gguf(42)

