"""On both real models, open_gguf reads exactly what gguf.GGUFReader reads:
every metadata key and value, and every tensor's name, type, shape, offset and bytes."""

from __future__ import annotations

import gguf
import numpy as np
import pytest

from ggufsm.reference.model.gguf_file import open_gguf

pytestmark = pytest.mark.real_model

EXPECTED = {  # what DESIGN.md says each file is
    "smollm2": ("llama", "gpt2", {"Q4_1", "Q8_0", "F32"}),
    "gemma3": ("gemma3", "llama", {"Q4_K", "Q5_0", "Q6_K", "Q8_0", "F32"}),
}


_opened: dict = {}  # name -> (GgufFile, GGUFReader): the reader takes 2 s and 11 s, so once per session


@pytest.fixture(params=sorted(EXPECTED))
def both(request):
    name = request.param
    path = request.getfixturevalue(f"{name}_path")  # tests/conftest.py: skips when not cached
    if name not in _opened:
        _opened[name] = (open_gguf(path), gguf.GGUFReader(path))
    return (name, *_opened[name])


def test_every_metadata_key_and_value_equals_gguf_reader(both):
    _, model, reader = both
    expected = {key: field.contents() for key, field in reader.fields.items() if not key.startswith("GGUF.")}
    assert list(model.metadata) == list(expected)
    differing = [key for key in expected if model.metadata[key] != expected[key]]
    assert differing == []


def test_every_tensor_name_type_shape_and_offset_equals_gguf_reader(both):
    _, model, reader = both
    ours = [(i.name, int(i.type), i.shape, i.offset, i.nbytes) for i in model.tensors.values()]
    theirs = [(t.name, int(t.tensor_type), tuple(int(n) for n in t.shape), int(t.data_offset), int(t.n_bytes))
              for t in reader.tensors]
    assert ours == theirs


def test_every_tensor_view_holds_the_bytes_gguf_reader_reads(both):
    _, model, reader = both
    for tensor in reader.tensors:
        assert np.array_equal(model.tensor_data(tensor.name), tensor.data.view(np.uint8).reshape(-1)), tensor.name


def test_the_real_models_are_what_the_design_says(both):
    name, model, _ = both
    architecture, tokenizer, types = EXPECTED[name]
    assert model.architecture == architecture
    assert model.hyperparameters["tokenizer_model"] == tokenizer
    assert {info.type.name for info in model.tensors.values()} == types
