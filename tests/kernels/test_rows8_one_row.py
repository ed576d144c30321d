"""A decode step's product over repacked weights (one activation row, kernels/x86/matmul_rows8.cpp rows8), for
every Rows8 type at Gemma 3's and SmolLM2's column counts and around them. The rules proved here: the one-row
product gives the bits each row of a batched step gives (so batched and alone stay bit-identical), agrees with
the scalar reference within summation order, and runs to the last byte of repacked weights (Q4_K's longer x8
blocks included) that end before an inaccessible page."""

from __future__ import annotations

import numpy as np
import pytest
from gguf.constants import GGML_QUANT_SIZES, GGMLQuantizationType
from matmul_contract import FLOAT_RELATIVE, as_quantized, dequantized
from simd_variants import SIMD_VARIANTS

from ggufsm._core import kernels
from ggufsm.reference.bench.quant_blocks import random_weights

ROWS8_TYPES = [GGMLQuantizationType[n] for n in ("Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q4_K", "Q6_K")]
# Columns: one block, Gemma 3's 640, 1024 and one block past it.
COLS_32 = (32, 640, 1024, 1056)
COLS_256 = (256, 1024, 1280, 2048)


def columns(qtype):
    return COLS_256 if GGML_QUANT_SIZES[qtype][0] == 256 else COLS_32


def cases():
    return [(qtype, cols) for qtype in ROWS8_TYPES for cols in columns(qtype)]


def case_id(case):
    return f"{case[0].name}-{case[1]}"


def made(qtype, cols, n, seed=3, rows=40):
    rng = np.random.default_rng(seed)
    weights = random_weights(qtype, rows, cols, rng)
    return weights, kernels.repack(int(qtype), weights, rows, cols), rng.standard_normal((n, cols)).astype(np.float32)


@pytest.mark.parametrize("isa", SIMD_VARIANTS)
@pytest.mark.parametrize("case", cases(), ids=case_id)
@pytest.mark.parametrize("batch", [2, 3])
def test_the_one_row_product_gives_the_bits_of_that_row_in_a_batched_step(isa, case, batch, restore_isa):
    qtype, cols = case
    kernels.force_isa(isa)
    _, packed, x = made(qtype, cols, batch)
    # The few-row kernels; Q5_0's one and two rows read pre-broadcast activations where they fit in L1 (all
    # but two rows of 1056 columns), its three rows broadcast: the same bits either way.
    together = kernels.matmul_packed(int(qtype), packed, 40, cols, x, 2)
    for i in range(batch):
        alone = kernels.matmul_packed(int(qtype), packed, 40, cols, x[i:i + 1], 2)
        assert np.array_equal(alone[0].view(np.uint32), together[i].view(np.uint32)), f"row {i}"


@pytest.mark.parametrize("isa", SIMD_VARIANTS)
@pytest.mark.parametrize("case", cases(), ids=case_id)
def test_the_one_row_product_agrees_with_the_scalar_reference_within_summation_order(isa, case, restore_isa):
    qtype, cols = case
    weights, packed, x = made(qtype, cols, 1)
    kernels.force_isa("scalar")
    scalar = kernels.matmul_packed(int(qtype), packed, 40, cols, x, 1)
    kernels.force_isa(isa)
    simd = kernels.matmul_packed(int(qtype), packed, 40, cols, x, 1)
    bound = 2 * FLOAT_RELATIVE * (np.abs(as_quantized(qtype, x)) @ np.abs(dequantized(qtype, weights, 40, cols)).T) + 1e-30
    assert np.all(np.abs(simd - scalar) <= bound)


@pytest.mark.parametrize("isa", ["scalar", *SIMD_VARIANTS])
@pytest.mark.parametrize("case", cases(), ids=case_id)
def test_a_one_row_product_over_repacked_weights_runs_to_the_last_byte_before_an_inaccessible_page(
        isa, case, before_a_guard_page, restore_isa):
    qtype, cols = case
    kernels.force_isa(isa)
    _, packed, x = made(qtype, cols, 1, rows=200)
    guarded = before_a_guard_page(packed)
    for threads in (1, 2):
        y = kernels.matmul_packed(int(qtype), guarded, 200, cols, x, threads)
        assert np.array_equal(y.view(np.uint32), kernels.matmul_packed(int(qtype), packed, 200, cols, x, threads).view(np.uint32))
