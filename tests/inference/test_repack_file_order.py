"""The load repacks the layer matrices in the order they lie in the file (cpp/forward/weights.cpp,
in_file_order: converters write blk.0, blk.1, blk.10, ..., blk.19, blk.2, ..., and a cold file arrives in
that order), and each matrix still lands where the forward reads it: a model whose tensors lie in name
order computes bit for bit as the same weights laid out in layer order, and as the numpy reference."""

from __future__ import annotations

import numpy as np
from gguf import GGMLQuantizationType as T

from ggufsm.conformance.fixtures.tiny_models import TinyLlamaSpec, tiny_llama_tensors, write_tiny_llama
from ggufsm.reference.architectures import load_tensors
from ggufsm.reference.architectures.weights import read_tensors

SPEC = TinyLlamaSpec(seed=7, n_layer=12, matrix_type=T.Q4_1)
TOKENS = [5, 17, 3, 88, 42, 0, 95, 11]
Q8_SHARE_OF_RANGE = 0.02  # test_fused_forward.py: activations rounded to 8 bits by both engines


def logits_of(path, engine):
    model = load_tensors(read_tensors(path), n_threads=2, engine=engine)
    return np.array(model.new_session(64).prefill(TOKENS, 0), copy=True)


def test_layers_in_name_order_compute_as_in_layer_order(tmp_path):
    tensors = tiny_llama_tensors(SPEC)
    layer_order = write_tiny_llama(tmp_path / "layer_order.gguf", SPEC, tensors=tensors)
    name_order = write_tiny_llama(tmp_path / "name_order.gguf", SPEC, tensors=dict(sorted(tensors.items())))
    assert list(read_tensors(name_order).tensors) != list(read_tensors(layer_order).tensors)
    np.testing.assert_array_equal(logits_of(name_order, "fused"), logits_of(layer_order, "fused"))


def test_layers_in_name_order_compute_as_the_numpy_reference(tmp_path):
    path = write_tiny_llama(tmp_path / "name_order.gguf", SPEC, tensors=dict(sorted(tiny_llama_tensors(SPEC).items())))
    fused, reference = logits_of(path, "fused"), logits_of(path, "numpy")
    np.testing.assert_allclose(fused, reference, rtol=0, atol=Q8_SHARE_OF_RANGE * float(np.ptp(reference)))
    assert int(np.argmax(fused)) == int(np.argmax(reference))
