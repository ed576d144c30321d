"""Q8_0 in the file's layout read in the Rows8 kernels' float order (WeightView::rows8_order: the output
matrix, which forward/output_repack.h repacks between two passes): per output element one chain of fused
multiply-adds of d_w * d_a by the block's exact integer sum, blocks in order. So the file layout's product
and the repacked one give the same bits, in every variant, alone or batched, at any thread count; and the
file-layout kernel (eight rows' integer sums gathered into one vector, cpp/kernels/x86/matmul.cpp,
q8_0_lanes_group) reads nothing past the weights' last byte."""

from __future__ import annotations

import zlib

import numpy as np
import pytest
from gguf.constants import GGMLQuantizationType
from matmul_contract import reference_and_bound
from simd_variants import SIMD_VARIANTS, only_with_simd

from ggufsm._core import kernels
from ggufsm.reference.bench.quant_blocks import random_weights

Q8_0 = GGMLQuantizationType.Q8_0
BLOCK_BYTES = 34
ALL_ISAS = ["scalar", *SIMD_VARIANTS]
# Decode's one activation row, a batched step's two to eight (one pass each), prefill's more (passes of eight).
ACTIVATION_ROWS = [1, 2, 3, 4, 5, 7, 8, 9, 17]


def case(label: str, rows: int, cols: int, n: int):
    rng = np.random.default_rng(zlib.crc32(label.encode()))
    return random_weights(Q8_0, rows, cols, rng), rng.standard_normal((n, cols)).astype(np.float32)


def in_order(weights, rows, cols, x, isa, threads=2):
    kernels.force_isa(isa)
    return kernels.matmul(int(Q8_0), weights, rows, cols, x, threads, rows8_order=True)


def repacked(weights, rows, cols, x, isa, threads=2):
    kernels.force_isa(isa)
    return kernels.matmul(int(Q8_0), weights, rows, cols, x, threads, repacked=True)


def bits(y):
    return y.view(np.uint32)


@pytest.mark.parametrize("isa", ALL_ISAS)
@pytest.mark.parametrize("n", ACTIVATION_ROWS)
def test_the_files_layout_in_the_rows8_order_gives_the_repacked_products_bits(isa, n, restore_isa):
    rows, cols = 40, 2400  # five groups of eight over two threads; 75 blocks
    weights, x = case(f"layouts {isa} {n}", rows, cols, n)
    assert np.array_equal(bits(in_order(weights, rows, cols, x, isa)), bits(repacked(weights, rows, cols, x, isa)))


@only_with_simd
@pytest.mark.parametrize("isa", SIMD_VARIANTS)
@pytest.mark.parametrize("n", ACTIVATION_ROWS)
def test_each_simd_variant_in_the_rows8_order_gives_the_scalar_references_bits_tail_rows_included(isa, n, restore_isa):
    rows, cols = 45, 576  # tiles of 16 rows: the last one (32 .. 45) has a group of eight and five rows after it
    weights, x = case(f"bits {isa} {n}", rows, cols, n)
    assert np.array_equal(bits(in_order(weights, rows, cols, x, isa)), bits(in_order(weights, rows, cols, x, "scalar")))


@pytest.mark.parametrize("n", ACTIVATION_ROWS)
def test_the_rows8_order_meets_the_matmul_contract(n, restore_isa):
    rows, cols = 45, 2400
    weights, x = case(f"contract {n}", rows, cols, n)
    exact, bound = reference_and_bound(Q8_0, weights, rows, cols, x)
    for isa in ALL_ISAS:
        assert (np.abs(in_order(weights, rows, cols, x, isa) - exact) <= bound).all(), isa


# A batched product's rows alone and the extreme codes: test_repack_q8_0.py, for both layouts in this order.


@pytest.mark.parametrize("isa", ALL_ISAS)
@pytest.mark.parametrize("rows", [200, 203])
@pytest.mark.parametrize("n", [1, 2, 4, 8, 9])
def test_the_rows8_order_runs_to_the_last_byte_before_an_inaccessible_page(isa, rows, n, before_a_guard_page, restore_isa):
    cols = 512  # 200 rows: 108 KiB, the next group's prefetch runs past the end over the last group; 203: tail rows last
    weights, x = case(f"guard {rows} {n}", rows, cols, n)
    guarded = before_a_guard_page(weights)
    for threads in (1, 2):
        assert np.array_equal(bits(in_order(guarded, rows, cols, x, isa, threads)), bits(in_order(weights, rows, cols, x, isa, threads)))


# The real tied output matrices in either layout: test_repack_q8_0.py, beside their repack's own test.
