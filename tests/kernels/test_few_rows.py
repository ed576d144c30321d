"""A decode step of a few sessions (2 to 8 activation rows: cpp/kernels/x86/matmul_rows.h's rows_few and
matmul_rows8.cpp's rows8_few) runs each weight block against all of them in passes of up to four, never one by
one. The rules: each row of such a product is bit for bit the product of that row alone (a session's logits in
a batch are its logits alone), and every SIMD variant agrees with the scalar reference within float summation
order, in the file's layout and repacked, with the rows spread over threads."""

from __future__ import annotations

import zlib

import numpy as np
import pytest
from gguf.constants import GGMLQuantizationType
from matmul_contract import FLOAT_RELATIVE, as_quantized, dequantized
from simd_variants import SIMD_VARIANTS, only_with_simd

from ggufsm._core import kernels
from ggufsm.reference.bench.quant_blocks import random_weights

QUANTIZED_TYPES = [GGMLQuantizationType[name] for name in ("Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_0", "Q4_K", "Q5_K", "Q6_K")]
FEW_ROWS = range(2, 9)
LAYOUTS = ["rows", "rows8"]


def block_elements(qtype) -> int:
    return 256 if qtype.name.endswith("_K") else 32


def case(qtype, layout, n, tag):
    """Weights of 48 rows (six groups of eight, over two threads) and 11 blocks (9 super-blocks), and n activations;
    None where the type has no repacked layout."""
    if layout == "rows8" and not kernels.repackable(int(qtype), 48):
        return None
    cols = block_elements(qtype) * (11 if block_elements(qtype) == 32 else 9)
    rng = np.random.default_rng(zlib.crc32(f"{tag} {qtype.name} {layout} {n}".encode()))
    return random_weights(qtype, 48, cols, rng), cols, rng.standard_normal((n, cols)).astype(np.float32)


def product(qtype, layout, weights, cols, x):
    return kernels.matmul(int(qtype), weights, 48, cols, x, 2, repacked=layout == "rows8")


@pytest.mark.parametrize("isa", ["scalar", *SIMD_VARIANTS])
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("qtype", QUANTIZED_TYPES, ids=lambda t: t.name)
def test_each_row_of_a_few_rows_product_is_bit_identical_to_that_row_alone(isa, layout, qtype, restore_isa):
    kernels.force_isa(isa)
    for n in FEW_ROWS:
        made = case(qtype, layout, n, "alone")
        if made is None:
            pytest.skip(f"{qtype.name} has no repacked layout")
        weights, cols, x = made
        together = product(qtype, layout, weights, cols, x)
        for i in range(n):
            alone = product(qtype, layout, weights, cols, x[i:i + 1])
            assert np.array_equal(together[i].view(np.uint32), alone[0].view(np.uint32)), f"{isa} n={n}: row {i} differs"


@only_with_simd
@pytest.mark.parametrize("isa", SIMD_VARIANTS)
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("qtype", QUANTIZED_TYPES, ids=lambda t: t.name)
def test_a_few_rows_product_agrees_with_the_scalar_reference_within_summation_order(isa, layout, qtype, restore_isa):
    for n in FEW_ROWS:
        made = case(qtype, layout, n, "agree")
        if made is None:
            pytest.skip(f"{qtype.name} has no repacked layout")
        weights, cols, x = made
        kernels.force_isa("scalar")
        scalar = product(qtype, layout, weights, cols, x)
        kernels.force_isa(isa)
        simd = product(qtype, layout, weights, cols, x)
        # Two float summation orders of the same integer dot products differ by at most this.
        bound = 2 * FLOAT_RELATIVE * (np.abs(as_quantized(qtype, x)) @ np.abs(dequantized(qtype, weights, 48, cols)).T) + 1e-30
        assert (np.abs(simd - scalar) <= bound).all(), f"{isa} n={n}: max difference {np.abs(simd - scalar).max():.3g}"


@pytest.mark.parametrize("isa", ["scalar", *SIMD_VARIANTS])
@pytest.mark.parametrize("rows", [1, 2, 3, 17])
@pytest.mark.parametrize("threads", [1, 2])
def test_q8_0_few_rows_over_odd_and_even_weight_row_counts_keep_each_row_bit_identical_to_alone(isa, rows, threads,
                                                                                                restore_isa):
    # The Q8_0 pass of four activation rows takes weight rows two at a time and a last odd one alone
    # (cpp/kernels/x86/matmul.cpp, rows_q8_0_few): both paths, and every split of the rows over threads,
    # must give each session its bits alone.
    qtype = GGMLQuantizationType.Q8_0
    kernels.force_isa(isa)
    cols = 32 * 11
    rng = np.random.default_rng(rows * 10 + threads)
    weights = random_weights(qtype, rows, cols, rng)
    for n in FEW_ROWS:
        x = rng.standard_normal((n, cols)).astype(np.float32)
        together = kernels.matmul(int(qtype), weights, rows, cols, x, threads)
        for i in range(n):
            alone = kernels.matmul(int(qtype), weights, rows, cols, x[i:i + 1], threads)
            assert np.array_equal(together[i].view(np.uint32), alone[0].view(np.uint32)), f"{isa} n={n}: row {i} differs"


@pytest.mark.parametrize("isa", ["scalar", *SIMD_VARIANTS])
@pytest.mark.parametrize("groups", [1, 2, 3, 5])
@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("qtype", [GGMLQuantizationType.Q4_0, GGMLQuantizationType.Q4_1], ids=lambda t: t.name)
def test_q4_few_rows_over_any_count_of_weight_groups_keep_each_row_bit_identical_to_alone(isa, groups, threads, qtype,
                                                                                          restore_isa):
    # A batched step's Q4 passes take two groups of eight weight rows at once and a last odd group alone
    # (cpp/kernels/x86/matmul_rows8.cpp, rows8_few): both paths, each thread's share of the groups odd or even,
    # must give each session its bits alone and agree with the scalar reference.
    rows, cols = 8 * groups, 32 * 7
    rng = np.random.default_rng(groups * 10 + threads)
    weights = random_weights(qtype, rows, cols, rng)
    for n in FEW_ROWS:
        x = rng.standard_normal((n, cols)).astype(np.float32)
        kernels.force_isa("scalar")
        scalar = kernels.matmul(int(qtype), weights, rows, cols, x, threads, repacked=True)
        kernels.force_isa(isa)
        together = kernels.matmul(int(qtype), weights, rows, cols, x, threads, repacked=True)
        for i in range(n):
            alone = kernels.matmul(int(qtype), weights, rows, cols, x[i:i + 1], threads, repacked=True)
            assert np.array_equal(together[i].view(np.uint32), alone[0].view(np.uint32)), f"{isa} n={n}: row {i} differs"
        bound = 2 * FLOAT_RELATIVE * (np.abs(as_quantized(qtype, x)) @ np.abs(dequantized(qtype, weights, rows, cols)).T) + 1e-30
        assert (np.abs(together - scalar) <= bound).all(), f"{isa} n={n}: max difference {np.abs(together - scalar).max():.3g}"
