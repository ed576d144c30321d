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


# gguf's reader takes 2 s on SmolLM2 and 11 s (and about a gigabyte of small arrays) on Gemma 3's
# 262,144-token vocabulary, so each file is read once per module and let go after it; Gemma 3's
# comparison is an exhaustive sweep, run with the slow tests (SmolLM2's has the same structure).
@pytest.fixture(scope="module", params=["smollm2", pytest.param("gemma3", marks=pytest.mark.slow)])
def both(request):
    from real_models import real_model_path

    name = request.param
    path = real_model_path(name)  # skips when not cached
    with open_gguf(path) as model:
        yield name, model, gguf.GGUFReader(path)


def test_the_real_models_open_as_the_design_says(smollm2_path, gemma3_path):
    for name, path in (("smollm2", smollm2_path), ("gemma3", gemma3_path)):
        architecture, tokenizer, types = EXPECTED[name]
        with open_gguf(path) as model:
            assert (model.architecture, model.hyperparameters["tokenizer_model"]) == (architecture, tokenizer)
            assert {info.type.name for info in model.tensors.values()} == types


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
