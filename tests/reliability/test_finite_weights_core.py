"""The finite-weights scan runs in the core; numpy's version of the same scan is its oracle.

Both must name the same first non-finite float for every float width and block layout the
check knows, wherever it sits (first, last, across the core's 4096-float chunks, several)."""

from __future__ import annotations

import gguf
import numpy as np
import pytest

from ggufsm.conformance.fixtures.tiny_models import TinyLlamaSpec, tiny_llama_tensors, write_tiny_llama
from ggufsm.reference.model import finite_weights
from ggufsm.reference.model.finite_weights import (
    BLOCK_SCALE_OFFSETS,
    EXPONENT_MASK,
    FLOAT_WIDTHS,
    _first_masked,
    _first_masked_numpy,
    check_finite_weights,
)
from ggufsm.reference.model.gguf_file import open_gguf
from ggufsm.spec.errors import InvalidModel

LAYOUTS = [(t.name, width, mask, 0, width) for t, (width, mask) in FLOAT_WIDTHS.items()] + [
    (f"{t.name}@{offset}", 2, EXPONENT_MASK[2], offset, gguf.GGML_QUANT_SIZES[t][1])
    for t, offsets in BLOCK_SCALE_OFFSETS.items() for offset in offsets
]
COUNT = 3 * 4096 + 17  # crosses the core's chunks, with a ragged last one


@pytest.mark.parametrize(("name", "width", "mask", "offset", "stride"), LAYOUTS, ids=[layout[0] for layout in LAYOUTS])
@pytest.mark.parametrize("planted", [(), (0,), (COUNT - 1,), (4095,), (4096,), (9000, 5000), (COUNT - 1, 12)])
def test_the_core_scan_and_the_numpy_oracle_find_the_same_first_non_finite_float(name, width, mask, offset, stride,
                                                                                 planted):
    rng = np.random.default_rng(15)
    data = rng.integers(0, 256, size=offset + (COUNT - 1) * stride + width + 5, dtype=np.uint8)
    floats = np.ndarray((COUNT,), dtype=f"<u{width}", buffer=data, offset=offset, strides=(stride,))
    floats &= mask - 1  # every float of the layout finite (exponent bits not all ones) ...
    floats[list(planted)] = mask | 1  # ... but the planted ones
    args = dict(offset=offset, stride=stride, count=COUNT)
    expected = None if not planted else offset + min(planted) * stride
    assert _first_masked_numpy(data, width, mask, **args) == expected
    assert _first_masked(data, width, mask, **args) == expected


def test_the_core_scan_refuses_a_range_past_the_buffer_instead_of_reading_it():
    data = np.zeros(64, dtype=np.uint8)
    with pytest.raises(ValueError, match="fit the buffer"):
        _first_masked(data, 4, EXPONENT_MASK[4], offset=0, stride=4, count=17)
    assert _first_masked(data, 4, EXPONENT_MASK[4], offset=0, stride=4, count=0) is None


@pytest.mark.parametrize("offset, stride, count", [
    (0, 2**62, 3),          # (count - 1) * stride wraps past int64
    (2**63 - 8, 4, 2),      # offset + the span wraps
    (61, 4, 1),             # one float that starts inside but ends past the end
])
def test_the_core_scan_refuses_a_range_whose_end_overflows_instead_of_wrapping_into_the_buffer(offset, stride, count):
    from ggufsm import _core

    data = np.zeros(64, dtype=np.uint8)
    with pytest.raises(ValueError, match="fit the buffer"):
        _core.first_masked(data, 4, EXPONENT_MASK[4], offset, stride, count)


@pytest.mark.parametrize("tensor", ["blk.0.attn_q.weight", "blk.1.ffn_down.weight", "output_norm.weight"])
def test_the_core_and_the_numpy_oracle_name_the_same_first_non_finite_tensor_of_a_file(tmp_path, monkeypatch, tensor):
    tensors = tiny_llama_tensors(TinyLlamaSpec())
    tensors[tensor].flat[7] = np.inf
    tensors["blk.1.attn_k.weight"].flat[3] = np.nan  # a later one: the first in file order is named
    path = write_tiny_llama(tmp_path / "nan.gguf", tensors=tensors)
    messages = []
    for scan in (finite_weights._first_masked, _first_masked_numpy):
        monkeypatch.setattr(finite_weights, "_first_masked", scan)
        with open_gguf(path) as model, pytest.raises(InvalidModel) as raised:
            check_finite_weights(model)
        messages.append(raised.value.message)
    assert messages[0] == messages[1]
    with open_gguf(path) as model:
        first = next(name for name in model.tensors if name in (tensor, "blk.1.attn_k.weight"))
    assert repr(first) in messages[0]
