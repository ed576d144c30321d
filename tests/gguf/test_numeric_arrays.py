"""Metadata arrays of numbers come out of the core as numpy arrays equal to the Python values, element for
element and of the file's element type; every other value is not an array of numbers (None)."""

from __future__ import annotations

import gguf
import numpy as np
import pytest

from ggufsm.conformance.fixtures import tiny_models
from ggufsm.reference.model.gguf_file import open_gguf

T = gguf.GGUFValueType
NUMBER_ARRAYS = {
    "test.u8": (T.UINT8, [0, 7, 255], np.uint8), "test.i8": (T.INT8, [-128, 0, 127], np.int8),
    "test.u16": (T.UINT16, [0, 65535], np.uint16), "test.i16": (T.INT16, [-32768, 5], np.int16),
    "test.u32": (T.UINT32, [0, 2**32 - 1], np.uint32), "test.i32": (T.INT32, [-(2**31), 1, 2**31 - 1], np.int32),
    "test.u64": (T.UINT64, [0, 2**64 - 1], np.uint64), "test.i64": (T.INT64, [-(2**63), 2**63 - 1], np.int64),
    "test.f32": (T.FLOAT32, [0.5, -1e30, 3.25], np.float32), "test.f64": (T.FLOAT64, [1e300, -0.0], np.float64),
}
OTHER_VALUES = {"test.strings": (T.STRING, ["a", "b"]), "test.flags": (T.BOOL, [True, False])}


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    add_tokenizer = tiny_models._add_bpe_tokenizer

    def with_test_arrays(writer, spec):
        add_tokenizer(writer, spec)
        for key, (element, values, _) in NUMBER_ARRAYS.items():
            writer.add_key_value(key, values, T.ARRAY, sub_type=element)
        for key, (element, values) in OTHER_VALUES.items():
            writer.add_key_value(key, values, T.ARRAY, sub_type=element)

    patch = pytest.MonkeyPatch()
    patch.setattr(tiny_models, "_add_bpe_tokenizer", with_test_arrays)
    try:
        return tiny_models.write_tiny_llama(tmp_path_factory.mktemp("arrays") / "arrays.gguf", seed=3)
    finally:
        patch.undo()


@pytest.mark.parametrize("key", sorted(NUMBER_ARRAYS))
def test_an_array_of_numbers_is_a_numpy_array_of_its_element_type_equal_to_its_python_values(model_path, key):
    _, values, dtype = NUMBER_ARRAYS[key]
    with open_gguf(model_path) as model:
        array = model.metadata.numeric_array(key)
        assert array.dtype == np.dtype(dtype) and array.shape == (len(values),)
        assert array.tolist() == model.metadata[key] == [dtype(v).item() for v in values]


@pytest.mark.parametrize("key", [*OTHER_VALUES, "general.name", "llama.context_length", "tokenizer.ggml.tokens"])
def test_any_other_value_is_not_an_array_of_numbers(model_path, key):
    with open_gguf(model_path) as model:
        assert model.metadata.numeric_array(key) is None


def test_an_unknown_key_is_a_key_error(model_path):
    with open_gguf(model_path) as model, pytest.raises(KeyError):
        model.metadata.numeric_array("no.such.key")
