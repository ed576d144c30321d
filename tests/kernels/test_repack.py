"""Weights repacked at load (cpp/kernels/repack.h, the Rows8 layout) give the product of the weights
they came from: bit for bit through the scalar reference, within float summation order through
every SIMD variant's register-blocked kernels, on random blocks and on the real models' layers."""

from __future__ import annotations

import zlib

import numpy as np
import pytest
from gguf.constants import GGMLQuantizationType
from gguf.quants import dequantize
from hypothesis import given, settings
from hypothesis import strategies as st
from matmul_contract import FLOAT_RELATIVE, as_quantized, dequantized
from simd_variants import SIMD_VARIANTS, only_with_simd

from ggufsm._core import kernels
from ggufsm.reference.bench.quant_blocks import random_weights
from ggufsm.spec.errors import InvalidInput

REPACKED_TYPES = [GGMLQuantizationType[name] for name in ("Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q4_K", "Q6_K")]
# Q4_K's layout holds the six-bit scales and mins unpacked: 32 bytes more per eight rows and super-block.
EXTRA_BYTES_PER_X8_BLOCK = {"Q4_K": 32}


def block_elements(qtype) -> int:
    return 256 if qtype.name.endswith("_K") else 32


# Activation rows: one (decode's mat-vec), and counts around the kernels' four at a time.
ACTIVATION_ROWS = [1, 3, 4, 5, 9]


def products(qtype, weights, rows, cols, x, isa):
    kernels.force_isa(isa)
    plain = kernels.matmul(int(qtype), weights, rows, cols, x, 2)
    repacked = kernels.matmul(int(qtype), weights, rows, cols, x, 2, repacked=True)
    return plain, repacked


def order_bound(qtype, weights, rows, cols, x):
    """Two float summation orders of the same integer dot products differ by at most this."""
    magnitude = np.abs(as_quantized(qtype, x)) @ np.abs(dequantized(qtype, weights, rows, cols)).T
    return 2 * FLOAT_RELATIVE * magnitude + 1e-30


@pytest.mark.parametrize("qtype", REPACKED_TYPES, ids=lambda t: t.name)
def test_the_types_with_a_rows8_layout_are_repackable_when_rows_are_a_multiple_of_eight(qtype):
    assert kernels.repackable(int(qtype), 16)
    assert not kernels.repackable(int(qtype), 12)


@pytest.mark.parametrize("qtype", [GGMLQuantizationType[n] for n in ("F32", "Q8_0", "Q3_K", "Q5_K")], ids=lambda t: t.name)
def test_types_without_a_rows8_layout_are_not_repackable(qtype):
    assert not kernels.repackable(int(qtype), 16)


def test_repacking_rows_not_a_multiple_of_eight_is_refused_by_name():
    weights = random_weights(GGMLQuantizationType.Q5_0, 12, 64, np.random.default_rng(1))
    with pytest.raises(InvalidInput, match="multiple of 8"):
        kernels.repack(int(GGMLQuantizationType.Q5_0), weights, 12, 64)


@pytest.mark.parametrize("qtype", REPACKED_TYPES, ids=lambda t: t.name)
def test_the_repack_keeps_the_size_but_for_unpacked_k_scales_and_leads_with_the_rows_scales(qtype):
    rows, cols = 16, 3 * block_elements(qtype)
    weights = random_weights(qtype, rows, cols, np.random.default_rng(2))
    packed = kernels.repack(int(qtype), weights, rows, cols)
    assert packed.nbytes == weights.nbytes + EXTRA_BYTES_PER_X8_BLOCK.get(qtype.name, 0) * (rows // 8) * 3
    x8_bytes = packed.nbytes // (rows // 8) // 3
    # The rows' d lead each x8 block, row r's at 2r (in a Q6_K block d comes last).
    blocks = weights.reshape(rows, -1)
    block = kernels.block_bytes(int(qtype))
    d_at = block - 2 if qtype.name == "Q6_K" else 0
    assert bytes(packed[2 * 3:2 * 3 + 2]) == bytes(blocks[3, d_at:d_at + 2])
    assert bytes(packed[x8_bytes + 2 * 5:x8_bytes + 2 * 5 + 2]) == bytes(blocks[5, block + d_at:block + d_at + 2])


@pytest.mark.parametrize("qtype", REPACKED_TYPES, ids=lambda t: t.name)
def test_every_repacked_row_unpacks_to_the_files_row_bit_for_bit(qtype):
    # Random blocks, then rows whose code bytes are all ones or all zeros (every fifth bit and top pair set or
    # clear): the unpack (dequantize_weight_row, the scalar reference's reading) inverts the repack exactly.
    rows, cols = 24, 5 * block_elements(qtype)
    weights = random_weights(qtype, rows, cols, np.random.default_rng(zlib.crc32(f"round trip {qtype.name}".encode())))
    codes_at = {"Q4_0": 2, "Q4_1": 4, "Q5_0": 2, "Q5_1": 4, "Q4_K": 4, "Q6_K": 0}[qtype.name]  # past d (and m)
    block = kernels.block_bytes(int(qtype))
    for r, byte in ((9, 0xFF), (14, 0x00)):
        for b in range(cols // block_elements(qtype)):
            end = b * block + (block - 2 if qtype.name == "Q6_K" else block)  # Q6_K's d comes last
            weights[r, b * block + codes_at:end] = byte
    weights = weights.ravel()
    packed = kernels.repack(int(qtype), weights, rows, cols)
    expected = dequantize(weights.reshape(rows, -1), qtype).reshape(rows, cols)
    for r in range(rows):
        assert np.array_equal(kernels.weight_row(int(qtype), packed, rows, cols, r, packed=True), expected[r]), r


@pytest.mark.parametrize("qtype", REPACKED_TYPES, ids=lambda t: t.name)
@pytest.mark.parametrize("n", ACTIVATION_ROWS)
def test_the_scalar_reference_over_repacked_weights_is_bit_identical_to_the_unpacked_one(qtype, n, restore_isa):
    rows, cols = 24, block_elements(qtype) * 7
    rng = np.random.default_rng(zlib.crc32(f"scalar {qtype.name} {n}".encode()))
    weights = random_weights(qtype, rows, cols, rng)
    x = rng.standard_normal((n, cols)).astype(np.float32)
    plain, repacked = products(qtype, weights, rows, cols, x, "scalar")
    assert np.array_equal(plain.view(np.uint32), repacked.view(np.uint32))


@only_with_simd
@pytest.mark.parametrize("isa", SIMD_VARIANTS)
@pytest.mark.parametrize("qtype", REPACKED_TYPES, ids=lambda t: t.name)
@pytest.mark.parametrize("n", ACTIVATION_ROWS)
def test_each_simd_variant_over_repacked_weights_agrees_with_the_scalar_reference(isa, qtype, n, restore_isa):
    # 40 rows: five groups of eight over two threads; 75 blocks (9 super-blocks).
    rows, cols = 40, 2400 if block_elements(qtype) == 32 else 2304
    rng = np.random.default_rng(zlib.crc32(f"{isa} {qtype.name} {n}".encode()))
    weights = random_weights(qtype, rows, cols, rng)
    x = rng.standard_normal((n, cols)).astype(np.float32)
    _, scalar = products(qtype, weights, rows, cols, x, "scalar")
    _, simd = products(qtype, weights, rows, cols, x, isa)
    assert (np.abs(simd - scalar) <= order_bound(qtype, weights, rows, cols, x)).all(), (
        f"{isa} {qtype.name}: max difference {np.abs(simd - scalar).max():.3g}")


@only_with_simd
@pytest.mark.parametrize("qtype", REPACKED_TYPES, ids=lambda t: t.name)
def test_the_largest_codes_against_the_largest_activations_do_not_saturate(qtype, restore_isa):
    # Every nibble and fifth bit set (codes 15 or 31) against activations that quantize to +-127:
    # the int16 partial sums of the AVX2 kernel are at their stated maximum.
    rows, cols = 8, 512
    weights = random_weights(qtype, rows, cols, np.random.default_rng(3)).reshape(rows, -1).copy()
    block = kernels.block_bytes(int(qtype))
    # The code bytes of each block: Q6_K's ql and qh lead, its scales and d follow.
    codes = {"Q4_0": (2, 18), "Q4_1": (4, 20), "Q5_0": (2, 22), "Q5_1": (4, 24), "Q4_K": (16, 144), "Q6_K": (0, 192)}[qtype.name]
    for b in range(cols // block_elements(qtype)):
        weights[:, b * block + codes[0]:b * block + codes[1]] = 0xFF
    weights = weights.ravel()
    x = np.tile(np.array([1.0, 1.0, 1.0, 1.0], np.float32), (2, cols // 4))
    x[1] = -x[1]
    for isa in SIMD_VARIANTS:
        _, scalar = products(qtype, weights, rows, cols, x, "scalar")
        _, simd = products(qtype, weights, rows, cols, x, isa)
        assert (np.abs(simd - scalar) <= order_bound(qtype, weights, rows, cols, x)).all(), isa


@only_with_simd
@settings(max_examples=40, deadline=None)
@given(qtype=st.sampled_from(REPACKED_TYPES), groups=st.integers(1, 6), blocks=st.integers(1, 40),
       n=st.integers(1, 11), seed=st.integers(0, 2**32 - 1))
def test_repack_then_kernel_equals_the_unpacked_kernel_on_random_blocks(qtype, groups, blocks, n, seed):
    rows, cols = 8 * groups, block_elements(qtype) * (blocks if block_elements(qtype) == 32 else 1 + blocks // 8)
    rng = np.random.default_rng(seed)
    weights = random_weights(qtype, rows, cols, rng)
    x = rng.standard_normal((n, cols)).astype(np.float32)
    before = kernels.active_isa()
    try:
        for isa in SIMD_VARIANTS:
            plain, repacked = products(qtype, weights, rows, cols, x, isa)
            assert (np.abs(repacked - plain) <= order_bound(qtype, weights, rows, cols, x)).all(), isa
    finally:
        kernels.force_isa(before)


def layer_matrices(path):
    """The real model's first and last layers' matrices that have a Rows8 layout: (name, type, raw, rows, cols)."""
    from ggufsm.reference.model.gguf_file import open_gguf

    with open_gguf(path) as model:
        n_layer = max(int(name.split(".")[1]) for name in model.tensors if name.startswith("blk.")) + 1
        for name, info in model.tensors.items():
            if not name.startswith(("blk.0.", f"blk.{n_layer - 1}.")) or info.type not in REPACKED_TYPES:
                continue
            cols, rows = int(info.shape[0]), int(np.prod(info.shape[1:]))
            if rows % 8 == 0:
                yield name, info.type, np.ascontiguousarray(model.tensor_data(name)).view(np.uint8).ravel(), rows, cols


@pytest.mark.real_model
@pytest.mark.parametrize("model_path", ["smollm2_path", "gemma3_path"])
def test_the_real_models_layers_repacked_give_the_unpacked_product(model_path, request, restore_isa):
    rng = np.random.default_rng(4)
    seen = set()
    for name, qtype, raw, rows, cols in layer_matrices(request.getfixturevalue(model_path)):
        x = rng.standard_normal((5, cols)).astype(np.float32)
        plain, repacked = products(qtype, raw, rows, cols, x, "scalar")
        assert np.array_equal(plain, repacked), name
        for isa in SIMD_VARIANTS:
            _, simd = products(qtype, raw, rows, cols, x, isa)
            assert (np.abs(simd - plain) <= order_bound(qtype, raw, rows, cols, x)).all(), f"{name} {isa}"
        seen.add(qtype)
    assert seen  # SmolLM2's layers are Q4_1, Gemma 3's gate/up/q/k Q5_0
