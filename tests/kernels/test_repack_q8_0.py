"""Q8_0 repacked with its lanes across eight weight rows (cpp/kernels/repack.h; the kernels in
cpp/kernels/x86/matmul.cpp, q8_0_x8_group, and cpp/kernels/scalar/matmul.cpp, dot_q8_0_rows8):
every variant runs one float order per output element (per block, the exact integer sum times
d_w * d_a by one fused multiply-add), so every SIMD variant gives the scalar reference's bits, a
batched product gives each row's bits alone, and the result stays within float summation order of
the file layout's product. A row of the repacked matrix still dequantizes to the file's row exactly
(the lookup a tied embedding needs once the output matrix is repacked at load)."""

from __future__ import annotations

import zlib

import numpy as np
import pytest
from gguf.constants import GGMLQuantizationType
from gguf.quants import dequantize
from matmul_contract import FLOAT_RELATIVE, as_quantized, dequantized, reference_and_bound
from simd_variants import SIMD_VARIANTS, only_with_simd

from ggufsm._core import kernels
from ggufsm.reference.bench.quant_blocks import random_weights
from ggufsm.spec.errors import InvalidInput

Q8_0 = GGMLQuantizationType.Q8_0
BLOCK_BYTES = 34
X8_BYTES = 8 * BLOCK_BYTES
ALL_ISAS = ["scalar", *SIMD_VARIANTS]
# Activation rows: decode's one, a batched step's two to eight (one pass each), prefill's more (passes of eight).
ACTIVATION_ROWS = [1, 2, 3, 4, 5, 7, 8, 9, 17]



def case(label: str, rows: int, cols: int, n: int):
    rng = np.random.default_rng(zlib.crc32(label.encode()))
    weights = random_weights(Q8_0, rows, cols, rng)
    x = rng.standard_normal((n, cols)).astype(np.float32)
    return weights, x


def packed_product(weights, rows, cols, x, isa, threads=2):
    kernels.force_isa(isa)
    return kernels.matmul(int(Q8_0), weights, rows, cols, x, threads, repacked=True)


# The two ways a product adds in the Rows8 order: the repacked copy, and the file's layout read in that order
# (the output matrix until forward/output_repack.h swaps its copy in; test_q8_0_rows8_order.py proves the two
# give the same bits). The properties below hold for both.
IN_ROWS8_ORDER = {"repacked": {"repacked": True}, "file layout": {"rows8_order": True}}


def product_in_rows8_order(layout, weights, rows, cols, x, isa, threads=2):
    kernels.force_isa(isa)
    return kernels.matmul(int(Q8_0), weights, rows, cols, x, threads, **IN_ROWS8_ORDER[layout])


def order_bound(weights, rows, cols, x):
    magnitude = np.abs(as_quantized(Q8_0, x)) @ np.abs(dequantized(Q8_0, weights, rows, cols)).T
    return 2 * FLOAT_RELATIVE * magnitude + 1e-30


def test_q8_0_repacks_when_rows_are_a_multiple_of_eight_but_the_load_leaves_it_in_the_files_layout():
    weights, _ = case("repacks", 16, 64, 1)
    assert kernels.repack(int(Q8_0), weights, 16, 64).nbytes == weights.nbytes
    assert not kernels.repackable(int(Q8_0), 16)  # "repacked at load": not yet (forward/weights.cpp)
    weights, _ = case("refused", 12, 64, 1)
    with pytest.raises(InvalidInput, match="multiple of 8"):
        kernels.repack(int(Q8_0), weights, 12, 64)


def test_the_x8_block_leads_with_the_rows_scales_then_puts_each_rows_four_codes_of_a_chunk_in_one_lane():
    rows, cols = 16, 96
    weights, _ = case("layout", rows, cols, 1)
    packed = kernels.repack(int(Q8_0), weights, rows, cols)
    assert packed.nbytes == weights.nbytes
    blocks = weights.reshape(rows, cols // 32, BLOCK_BYTES)
    x8 = packed.reshape(rows // 8, cols // 32, X8_BYTES)
    for g in range(rows // 8):
        for b in range(cols // 32):
            for r in range(8):
                assert bytes(x8[g, b, 2 * r:2 * r + 2]) == bytes(blocks[8 * g + r, b, 0:2])
                for c in range(8):
                    lane = x8[g, b, 16 + 32 * c + 4 * r:16 + 32 * c + 4 * r + 4]
                    assert bytes(lane) == bytes(blocks[8 * g + r, b, 2 + 4 * c:2 + 4 * c + 4])


@pytest.mark.parametrize("n", ACTIVATION_ROWS)
def test_the_repacked_product_meets_the_matmul_contract_and_the_file_layouts_product_within_summation_order(n, restore_isa):
    rows, cols = 40, 2400
    weights, x = case(f"contract {n}", rows, cols, n)
    for isa in ALL_ISAS:
        y = packed_product(weights, rows, cols, x, isa)
        exact, bound = reference_and_bound(Q8_0, weights, rows, cols, x)
        assert (np.abs(y - exact) <= bound).all(), isa
        plain = kernels.matmul(int(Q8_0), weights, rows, cols, x, 2)
        assert (np.abs(y - plain) <= order_bound(weights, rows, cols, x)).all(), isa


@only_with_simd
@pytest.mark.parametrize("isa", SIMD_VARIANTS)
@pytest.mark.parametrize("n", ACTIVATION_ROWS)
def test_each_simd_variant_over_repacked_q8_0_gives_the_scalar_references_bits(isa, n, restore_isa):
    rows, cols = 40, 2400  # five groups of eight over two threads; 75 blocks
    weights, x = case(f"bits {isa} {n}", rows, cols, n)
    scalar = packed_product(weights, rows, cols, x, "scalar")
    simd = packed_product(weights, rows, cols, x, isa)
    assert np.array_equal(simd.view(np.uint32), scalar.view(np.uint32))


@pytest.mark.parametrize("isa", ALL_ISAS)
@pytest.mark.parametrize("n", [2, 4, 8, 9])
@pytest.mark.parametrize("layout", IN_ROWS8_ORDER)
def test_each_activation_row_of_a_batched_product_has_its_bits_alone(layout, isa, n, restore_isa):
    rows, cols = 48, 576
    weights, x = case(f"alone {isa} {n}", rows, cols, n)
    together = product_in_rows8_order(layout, weights, rows, cols, x, isa)
    for i in range(n):
        for threads in (1, 2):
            alone = product_in_rows8_order(layout, weights, rows, cols, x[i:i + 1], isa, threads)
            assert np.array_equal(together[i].view(np.uint32), alone[0].view(np.uint32)), (i, threads)


@pytest.mark.parametrize("isa", ALL_ISAS)
@pytest.mark.parametrize("layout", IN_ROWS8_ORDER)
def test_the_extreme_codes_against_the_largest_activations_do_not_saturate(layout, isa, restore_isa):
    # Codes -128 and 127 (|w| = 128 is the sign trick's largest magnitude) against activations that
    # quantize to +-127: the AVX2 path's int16 pair sums at their maximum.
    rows, cols = 8, 512
    weights = random_weights(Q8_0, rows, cols, np.random.default_rng(3)).reshape(rows, -1, BLOCK_BYTES).copy()
    weights[:, :, 2:18] = 0x80
    weights[:, :, 18:34] = 0x7F
    weights = weights.reshape(-1)
    x = np.tile(np.array([1.0, -1.0, 1.0, 1.0], np.float32), (2, cols // 4))
    x[1] = -x[1]
    y = product_in_rows8_order(layout, weights, rows, cols, x, isa)
    exact, bound = reference_and_bound(Q8_0, weights, rows, cols, x)
    assert (np.abs(y - exact) <= bound).all()
    scalar = product_in_rows8_order(layout, weights, rows, cols, x, "scalar")
    assert np.array_equal(y.view(np.uint32), scalar.view(np.uint32))




@pytest.mark.parametrize("isa", ALL_ISAS)
@pytest.mark.parametrize("n", [1, 2, 4, 8, 9])
def test_the_repacked_product_runs_to_the_last_byte_before_an_inaccessible_page(isa, n, before_a_guard_page, restore_isa):
    rows, cols = 200, 512  # 100+ KiB: the prefetch of the groups ahead runs past the end over the last ones
    weights, x = case(f"guard {n}", rows, cols, n)
    packed = kernels.repack(int(Q8_0), weights, rows, cols)
    guarded = before_a_guard_page(packed)
    kernels.force_isa(isa)
    for threads in (1, 2):
        y = kernels.matmul_packed(int(Q8_0), guarded, rows, cols, x, threads)
        expected = kernels.matmul_packed(int(Q8_0), packed, rows, cols, x, threads)
        assert np.array_equal(y.view(np.uint32), expected.view(np.uint32))


def test_a_repacked_row_dequantizes_to_the_files_row_as_gguf_reads_it():
    rows, cols = 24, 576
    weights, _ = case("embedding", rows, cols, 1)
    packed = kernels.repack(int(Q8_0), weights, rows, cols)
    expected = dequantize(weights.reshape(rows, -1), Q8_0).reshape(rows, cols)
    for r in range(rows):
        assert np.array_equal(kernels.weight_row(int(Q8_0), packed, rows, cols, r, packed=True), expected[r])
        assert np.array_equal(kernels.weight_row(int(Q8_0), weights, rows, cols, r), expected[r])
    with pytest.raises(InvalidInput, match="outside"):
        kernels.weight_row(int(Q8_0), packed, rows, cols, rows, packed=True)


def test_weights_with_no_rows8_layout_are_not_read_as_packed_by_name():
    weights, x = case("not packed", 12, 64, 1)
    with pytest.raises(InvalidInput, match="Rows8"):
        kernels.matmul_packed(int(Q8_0), weights, 12, 64, x)


def tied_embedding(path):
    from ggufsm.reference.model.gguf_file import open_gguf

    with open_gguf(path) as model:
        info = model.tensors["token_embd.weight"]
        assert "output.weight" not in model.tensors  # tied
        cols, rows = int(info.shape[0]), int(np.prod(info.shape[1:]))
        return info.type, np.ascontiguousarray(model.tensor_data("token_embd.weight")).view(np.uint8).ravel(), rows, cols


@pytest.mark.real_model
@pytest.mark.parametrize("model_path", ["smollm2_path", "gemma3_path"])
def test_the_real_tied_output_matrix_repacked_gives_its_rows_and_the_scalar_references_bits(model_path, request, restore_isa):
    qtype, raw, rows, cols = tied_embedding(request.getfixturevalue(model_path))
    assert qtype == Q8_0
    packed = kernels.repack(int(Q8_0), raw, rows, cols, 2)
    rng = np.random.default_rng(5)
    for r in [0, 1, 7, 8, rows // 2 + 3, rows - 1]:
        expected = dequantize(raw.reshape(rows, -1)[r:r + 1], Q8_0).reshape(cols)
        assert np.array_equal(kernels.weight_row(int(Q8_0), packed, rows, cols, r, packed=True), expected)
    # A slice of the matrix (its first 1024 rows) through every variant, one and four activation rows.
    head = raw[:1024 * (cols // 32) * BLOCK_BYTES]
    for n in (1, 4):
        x = rng.standard_normal((n, cols)).astype(np.float32)
        scalar = packed_product(head, 1024, cols, x, "scalar")
        plain = kernels.matmul(int(Q8_0), head, 1024, cols, x, 2)
        assert (np.abs(scalar - plain) <= order_bound(head, 1024, cols, x)).all()
        for isa in SIMD_VARIANTS:
            assert np.array_equal(packed_product(head, 1024, cols, x, isa).view(np.uint32), scalar.view(np.uint32)), isa


@pytest.mark.real_model
@pytest.mark.parametrize("model_path", ["smollm2_path", "gemma3_path"])
def test_the_real_tied_output_matrix_gives_the_same_bits_in_either_layout_in_the_rows8_order(model_path, request, restore_isa):
    qtype, raw, rows, cols = tied_embedding(request.getfixturevalue(model_path))
    assert qtype == Q8_0
    head = raw[:1024 * (cols // 32) * BLOCK_BYTES]  # its first 1024 rows
    rng = np.random.default_rng(7)
    for n in (1, 4):
        x = rng.standard_normal((n, cols)).astype(np.float32)
        for isa in ALL_ISAS:
            packed, file_layout = (product_in_rows8_order(layout, head, 1024, cols, x, isa) for layout in IN_ROWS8_ORDER)
            assert np.array_equal(file_layout.view(np.uint32), packed.view(np.uint32)), isa
