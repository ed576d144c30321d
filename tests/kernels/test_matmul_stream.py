"""A decode step's product (one activation row) prefetches the weight stream ahead of the row it computes
(cpp/kernels/x86/matmul.cpp rows_one, matmul_rows8.cpp prefetch_block), past the weights' end over the last
rows. The rule proved here: what runs past the end is prefetch only, which never faults, so a matrix that ends
right before an inaccessible page is multiplied without a fault, to the same bits as the same weights elsewhere."""

from __future__ import annotations

import numpy as np
import pytest
from gguf.constants import GGMLQuantizationType
from simd_variants import SIMD_VARIANTS

from ggufsm._core import kernels
from ggufsm.reference.bench.quant_blocks import random_weights


@pytest.mark.parametrize("isa", ["scalar", *SIMD_VARIANTS])
@pytest.mark.parametrize("qtype", [GGMLQuantizationType[n] for n in ("Q8_0", "Q4_1", "Q5_0", "Q4_K", "Q6_K")],
                         ids=lambda t: t.name)
def test_a_one_row_product_runs_to_the_last_byte_before_an_inaccessible_page(isa, qtype, before_a_guard_page, restore_isa):
    kernels.force_isa(isa)
    rows, cols = 200, 512  # 100+ KiB of weights: the read-ahead runs past the end over the last rows
    rng = np.random.default_rng(7)
    weights = random_weights(qtype, rows, cols, rng)
    x = rng.standard_normal((1, cols)).astype(np.float32)
    guarded = before_a_guard_page(weights)
    for threads in (1, 2):
        y = kernels.matmul(int(qtype), guarded, rows, cols, x, threads)
        assert np.array_equal(y.view(np.uint32), kernels.matmul(int(qtype), weights, rows, cols, x, threads).view(np.uint32))


@pytest.mark.parametrize("isa", ["scalar", *SIMD_VARIANTS])
@pytest.mark.parametrize("qtype", [GGMLQuantizationType[n] for n in ("Q8_0", "Q4_1", "Q5_0", "Q4_K", "Q6_K")],
                         ids=lambda t: t.name)
@pytest.mark.parametrize("n", [2, 3, 4, 5, 8])
def test_a_batched_step_product_runs_to_the_last_byte_before_an_inaccessible_page(isa, qtype, n, before_a_guard_page,
                                                                                  restore_isa):
    """A batched decode step (2 .. 8 activation rows, matmul_rows.h rows_few, matmul.cpp rows_q8_0_few)
    prefetches every line of each weight row ahead of it as the one-row product does: past the end too."""
    kernels.force_isa(isa)
    rows, cols = 200, 512
    rng = np.random.default_rng(11)
    weights = random_weights(qtype, rows, cols, rng)
    x = rng.standard_normal((n, cols)).astype(np.float32)
    guarded = before_a_guard_page(weights)
    for threads in (1, 2):
        y = kernels.matmul(int(qtype), guarded, rows, cols, x, threads)
        assert np.array_equal(y.view(np.uint32), kernels.matmul(int(qtype), weights, rows, cols, x, threads).view(np.uint32))
