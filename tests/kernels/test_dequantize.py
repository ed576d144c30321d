"""Dequantization is bit-exact against gguf.quants.dequantize, the numpy oracle."""

from __future__ import annotations

import numpy as np
import pytest
from gguf import GGUFReader
from gguf.constants import GGML_QUANT_SIZES, GGMLQuantizationType
from gguf.quants import dequantize as oracle_dequantize
from hypothesis import given, settings
from hypothesis import strategies as st

from ggufsm._core import kernels
from ggufsm.reference.bench.quant_blocks import KERNEL_TYPES
from ggufsm.spec.errors import InvalidInput, InvalidModel, UnsupportedModel


def assert_bits_equal(ours: np.ndarray, theirs: np.ndarray, where: str) -> None:
    """Equal bit for bit, except that any NaN equals any NaN (payloads are not specified)."""
    ours, theirs = ours.astype(np.float32).ravel(), theirs.astype(np.float32).ravel()
    assert ours.shape == theirs.shape, where
    both_nan = np.isnan(ours) & np.isnan(theirs)
    differ = (ours.view(np.uint32) != theirs.view(np.uint32)) & ~both_nan
    if differ.any():
        first = int(np.flatnonzero(differ)[0])
        pytest.fail(f"{where}: element {first} is {ours[first]!r}, gguf-py gives {theirs[first]!r} "
                    f"({int(differ.sum())} of {ours.size} differ)")


@pytest.mark.parametrize("qtype", KERNEL_TYPES, ids=lambda t: t.name)
@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_random_blocks_dequantize_bit_exactly_like_gguf_py(qtype, data):
    block_size, block_bytes = GGML_QUANT_SIZES[qtype]
    n_blocks = data.draw(st.integers(1, 8), label="n_blocks")
    raw = data.draw(st.binary(min_size=n_blocks * block_bytes, max_size=n_blocks * block_bytes), label="bytes")
    blocks = np.frombuffer(raw, dtype=np.uint8)
    ours = kernels.dequantize(int(qtype), blocks, n_blocks * block_size)
    with np.errstate(all="ignore"):  # random float16 scales include inf and NaN
        theirs = oracle_dequantize(blocks.reshape(1, -1), qtype)
    assert_bits_equal(ours, theirs, f"{qtype.name} x {n_blocks} blocks")


def test_block_sizes_match_the_gguf_package():
    for qtype in KERNEL_TYPES:
        assert (kernels.block_size(int(qtype)), kernels.block_bytes(int(qtype))) == GGML_QUANT_SIZES[qtype], qtype.name
        assert kernels.kernels_support(int(qtype))
        assert kernels.type_name(int(qtype)) == qtype.name


def test_a_partial_block_count_is_refused_by_name():
    with pytest.raises(InvalidInput, match="Q4_K"):
        kernels.dequantize(int(GGMLQuantizationType.Q4_K), np.zeros(144, np.uint8), 100)
    with pytest.raises(InvalidModel, match="Q8_0 blocks"):
        kernels.row_bytes(int(GGMLQuantizationType.Q8_0), 48)


def test_a_buffer_shorter_than_the_blocks_is_refused():
    with pytest.raises(InvalidInput, match="need 68"):
        kernels.dequantize(int(GGMLQuantizationType.Q8_0), np.zeros(67, np.uint8), 64)


def test_an_unknown_type_is_unsupported():
    assert not kernels.kernels_support(int(GGMLQuantizationType.IQ2_XXS))
    with pytest.raises(UnsupportedModel, match="type#16|IQ2_XXS"):
        kernels.dequantize(int(GGMLQuantizationType.IQ2_XXS), np.zeros(66, np.uint8), 256)


# The sampled sweep: numpy's generator seeded SAMPLE_SEED picks, for every tensor type of a file,
# TENSORS_PER_TYPE of its tensors (all when fewer) and in each ROWS_PER_TENSOR rows (all when fewer).
# Every type's kernel meets the real files' data: 9 of SmolLM2's 272 tensors (0.5 % of its bytes)
# and 20 of Gemma 3's 236 (1.5 %), every type of both, in well under a second; the slow sibling
# below checks every block of every tensor (about a minute and 2 GB of the oracle's arrays).
SAMPLE_SEED = 0
TENSORS_PER_TYPE = 4
ROWS_PER_TENSOR = 256


def sampled_rows(model, rng: np.random.Generator):
    """(tensor name, type, raw bytes of the chosen rows, their element count) for the sample."""
    by_type: dict = {}
    for info in model.tensors.values():
        by_type.setdefault(info.type, []).append(info)
    for qtype, infos in sorted(by_type.items()):
        for index in sorted(rng.choice(len(infos), min(TENSORS_PER_TYPE, len(infos)), replace=False)):
            info = infos[index]
            row_length = info.shape[0]
            n_rows = int(np.prod(info.shape[1:], dtype=np.int64))
            rows = np.sort(rng.choice(n_rows, min(ROWS_PER_TENSOR, n_rows), replace=False))
            raw = model.tensor_data(info.name).reshape(n_rows, -1)[rows]
            yield info.name, qtype, np.ascontiguousarray(raw).ravel(), len(rows) * row_length


@pytest.mark.real_model
@pytest.mark.parametrize("model_path", ["smollm2_path", "gemma3_path"])
def test_a_seeded_sample_of_every_tensor_type_of_the_real_models_dequantizes_bit_exactly(model_path, request):
    from ggufsm.reference.model.gguf_file import open_gguf

    with open_gguf(request.getfixturevalue(model_path)) as model:
        checked = set()
        for name, qtype, raw, n in sampled_rows(model, np.random.default_rng(SAMPLE_SEED)):
            ours = kernels.dequantize(int(qtype), raw, n)
            assert_bits_equal(ours, oracle_dequantize(raw.reshape(1, -1), qtype), name)
            checked.add(qtype)
        assert checked == {info.type for info in model.tensors.values()}


@pytest.mark.slow
@pytest.mark.real_model
@pytest.mark.parametrize("model_path", ["smollm2_path", "gemma3_path"])
def test_every_tensor_of_the_real_models_dequantizes_bit_exactly(model_path, request):
    reader = GGUFReader(request.getfixturevalue(model_path))
    seen_types = set()
    for tensor in reader.tensors:
        n = int(tensor.n_elements)
        raw = np.ascontiguousarray(tensor.data).view(np.uint8).ravel()
        ours = kernels.dequantize(int(tensor.tensor_type), raw, n)
        assert_bits_equal(ours, oracle_dequantize(raw.reshape(1, -1), tensor.tensor_type), tensor.name)
        seen_types.add(tensor.tensor_type.name)
    assert {"Q8_0", "F32"} <= seen_types
