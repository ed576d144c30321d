"""Products that share their activations in one pool dispatch (matmul.h, matmul_shared: wq/wk/wv and
gate/up of a decode step) give each product exactly as matmul() alone does."""

from __future__ import annotations

import numpy as np
import pytest
from gguf.constants import GGMLQuantizationType as Q

from ggufsm._core import kernels
from ggufsm.reference.bench.quant_blocks import random_weights
from ggufsm.spec.errors import InvalidInput

# Sets that share one activation format, shaped like the real models' (smaller): SmolLM2's Q4_1
# wq/wk/wv, Gemma 3's Q5_0 wq/wk beside a Q8_0 wv (more bytes per row, so the byte split is not the
# row split), its Q5_0 gate/up, a k-quant pair, and row counts that end in partial tiles.
SETS = [
    [(Q.Q4_1, 96), (Q.Q4_1, 32), (Q.Q4_1, 32)],
    [(Q.Q5_0, 64), (Q.Q5_0, 16), (Q.Q8_0, 16)],
    [(Q.Q5_0, 200), (Q.Q5_0, 200)],
    [(Q.Q4_K, 40), (Q.Q6_K, 24)],
    [(Q.Q8_0, 5), (Q.Q4_0, 3), (Q.Q5_1, 17), (Q.Q4_1, 1)],
    [(Q.F16, 33), (Q.F32, 7)],
]
COLS = 512


def make(products, n, seed):
    rng = np.random.default_rng(seed)
    weights = [random_weights(qtype, rows, COLS, rng) for qtype, rows in products]
    x = rng.standard_normal((n, COLS)).astype(np.float32)
    return weights, x


@pytest.mark.parametrize("products", SETS, ids=lambda s: "+".join(f"{t.name}x{r}" for t, r in s))
@pytest.mark.parametrize("n", [1, 3, 5])
@pytest.mark.parametrize("n_threads", [1, 2, 3])
@pytest.mark.parametrize("repacked", [False, True])
def test_each_shared_product_is_bit_identical_to_its_product_alone(products, n, n_threads, repacked):
    weights, x = make(products, n, seed=len(products) * 100 + n)
    # Only whole groups of eight rows of a repackable type are repacked, as at load.
    packs = [repacked and kernels.repackable(int(qtype), rows) for qtype, rows in products]
    together = kernels.matmul_shared([(int(qtype), w, rows, pack) for (qtype, rows), w, pack in zip(products, weights, packs, strict=True)],
                                     COLS, x, n_threads)
    for (qtype, rows), w, pack, y in zip(products, weights, packs, together, strict=True):
        alone = kernels.matmul(int(qtype), w, rows, COLS, x, n_threads, repacked=pack)
        assert y.shape == alone.shape
        assert np.array_equal(y.view(np.uint32), alone.view(np.uint32)), f"{qtype.name} x {rows} rows"


def test_a_one_dimensional_x_gives_one_dimensional_products():
    weights, x = make(SETS[0], 1, seed=3)
    ys = kernels.matmul_shared([(int(t), w, r, False) for (t, r), w in zip(SETS[0], weights, strict=True)], COLS, x[0], 2)
    assert [y.shape for y in ys] == [(r,) for _, r in SETS[0]]


def test_products_that_need_another_activation_format_are_refused_by_name():
    # Q4_K needs 256-blocks (Q8_K), Q4_1 32-blocks (Q8_32): one quantization cannot serve both.
    products = [(Q.Q4_1, 16), (Q.Q4_K, 16)]
    weights, x = make(products, 1, seed=4)
    with pytest.raises(InvalidInput, match="Q8_32.*Q4_K.*Q8_K"):
        kernels.matmul_shared([(int(t), w, r, False) for (t, r), w in zip(products, weights, strict=True)], COLS, x, 2)


def test_more_products_than_one_dispatch_takes_are_refused_with_the_limit():
    products = [(Q.Q8_0, 8)] * 5
    weights, x = make(products, 1, seed=5)
    with pytest.raises(InvalidInput, match="at most 4 products, got 5"):
        kernels.matmul_shared([(int(t), w, r, False) for (t, r), w in zip(products, weights, strict=True)], COLS, x, 2)



@pytest.mark.parametrize("n_threads", [2, 3])
def test_a_large_matrix_in_many_chunks_gives_every_bit_one_thread_gives(n_threads):
    # Above 4 MiB per thread the rows go out in about 4 MiB chunks (matmul.cpp, chunks_per_thread_for):
    # 19 MB of Q8_0 weights is several chunks per thread, alone and beside a small product.
    rng = np.random.default_rng(6)
    rows, cols = 17000, 1024
    big = random_weights(Q.Q8_0, rows, cols, rng)
    small = random_weights(Q.Q4_0, 24, cols, rng)
    x = rng.standard_normal(cols).astype(np.float32)
    one = kernels.matmul(int(Q.Q8_0), big, rows, cols, x, 1)
    assert np.array_equal(kernels.matmul(int(Q.Q8_0), big, rows, cols, x, n_threads).view(np.uint32), one.view(np.uint32))
    shared = kernels.matmul_shared([(int(Q.Q4_0), small, 24, False), (int(Q.Q8_0), big, rows, False)], cols, x, n_threads)
    assert np.array_equal(shared[1].view(np.uint32), one.view(np.uint32))
    assert np.array_equal(shared[0].view(np.uint32), kernels.matmul(int(Q.Q4_0), small, 24, cols, x, 1).view(np.uint32))
