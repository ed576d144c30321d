"""Quantized matmul meets its stated numeric contract against a float64 reference."""

from __future__ import annotations

import numpy as np
import pytest
from gguf.constants import GGMLQuantizationType
from matmul_contract import FLOAT_RELATIVE, activation_block, as_quantized, dequantized, reference_and_bound

from ggufsm._core import kernels
from ggufsm.reference.bench.quant_blocks import KERNEL_TYPES, random_weights
from ggufsm.spec.errors import InvalidInput, InvalidModel, UnsupportedModel

SHAPES = [(5, 256), (33, 512), (64, 1536)]


def run_matmul(qtype, rows, cols, n, seed, n_threads=2):
    rng = np.random.default_rng(seed)
    weights = random_weights(qtype, rows, cols, rng)
    x = rng.standard_normal((n, cols)).astype(np.float32)
    # Outliers make some blocks' scales much larger than others'.
    x[:, rng.integers(0, cols, 3)] *= 20
    return weights, x, kernels.matmul(int(qtype), weights, rows, cols, x, n_threads)


@pytest.mark.parametrize("qtype", KERNEL_TYPES, ids=lambda t: t.name)
@pytest.mark.parametrize("rows,cols", SHAPES)
@pytest.mark.parametrize("n", [1, 3, 6])
def test_matmul_is_within_the_contract_of_the_float64_product(qtype, rows, cols, n):
    weights, x, y = run_matmul(qtype, rows, cols, n, seed=rows * cols + n)
    reference, bound = reference_and_bound(qtype, weights, rows, cols, x)
    error = np.abs(y.astype(np.float64) - reference)
    worst = np.unravel_index(np.argmax(error / bound), error.shape)
    assert (error <= bound).all(), (f"{qtype.name} [{rows}x{cols}] n={n}: y{list(worst)} off by {error[worst]:.3g}, "
                                    f"bound {bound[worst]:.3g}")


@pytest.mark.parametrize("qtype", KERNEL_TYPES, ids=lambda t: t.name)
def test_matmul_is_the_exact_product_with_activations_quantized_as_stated(qtype):
    # Tighter than the bound: with x quantized by the stated rule, only float32 summation error remains.
    rows, cols = 48, 1536
    weights, x, y = run_matmul(qtype, rows, cols, 2, seed=11)
    w = dequantized(qtype, weights, rows, cols)
    expected = as_quantized(qtype, x) @ w.T
    tolerance = FLOAT_RELATIVE * (np.abs(as_quantized(qtype, x)) @ np.abs(w).T)
    assert (np.abs(y - expected) <= tolerance).all(), f"{qtype.name}: off by {np.abs(y - expected).max():.3g}"


@pytest.mark.parametrize("qtype", [t for t in KERNEL_TYPES if activation_block(t) > 1], ids=lambda t: t.name)
def test_quantized_types_really_quantize_the_activations(qtype):
    # The bound is not vacuous: the error is of the order the 8-bit activations allow, not zero.
    weights, x, y = run_matmul(qtype, 64, 512, 1, seed=7)
    reference, bound = reference_and_bound(qtype, weights, 64, 512, x)
    assert 0 < np.abs(y - reference).max() <= bound.max()


def test_a_one_dimensional_x_gives_a_one_dimensional_y():
    qtype = GGMLQuantizationType.Q8_0
    rng = np.random.default_rng(0)
    weights = random_weights(qtype, 4, 64, rng)
    x = rng.standard_normal(64).astype(np.float32)
    y = kernels.matmul(int(qtype), weights, 4, 64, x)
    assert y.shape == (4,)
    np.testing.assert_array_equal(y, kernels.matmul(int(qtype), weights, 4, 64, x[None, :])[0])


@pytest.mark.parametrize("n_threads", [1, 2, 3, 5])
def test_the_thread_count_does_not_change_any_bit(n_threads):
    qtype = GGMLQuantizationType.Q4_K
    rng = np.random.default_rng(1)
    weights = random_weights(qtype, 100, 512, rng)
    x = rng.standard_normal((4, 512)).astype(np.float32)
    one = kernels.matmul(int(qtype), weights, 100, 512, x, 1)
    np.testing.assert_array_equal(kernels.matmul(int(qtype), weights, 100, 512, x, n_threads), one)


def test_cols_not_a_whole_number_of_blocks_is_an_invalid_model():
    with pytest.raises(InvalidModel, match="Q4_1 blocks"):
        kernels.matmul(int(GGMLQuantizationType.Q4_1), np.zeros(1000, np.uint8), 2, 48, np.zeros(48, np.float32))


def test_a_short_weight_buffer_is_refused_with_the_sizes():
    with pytest.raises(InvalidInput, match="holds 39 bytes, need 40"):
        kernels.matmul(int(GGMLQuantizationType.Q4_1), np.zeros(39, np.uint8), 2, 32, np.zeros(32, np.float32))


def test_x_of_the_wrong_width_is_refused():
    with pytest.raises(InvalidInput, match="cols 32"):
        kernels.matmul(int(GGMLQuantizationType.Q8_0), np.zeros(68, np.uint8), 2, 32, np.zeros(64, np.float32))


def test_an_unsupported_weight_type_is_named():
    with pytest.raises(UnsupportedModel, match="IQ2_XXS|type#16"):
        kernels.matmul(int(GGMLQuantizationType.IQ2_XXS), np.zeros(66, np.uint8), 1, 256, np.zeros(256, np.float32))
