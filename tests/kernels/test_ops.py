"""The float32 ops agree with their numpy definitions (computed in float64)."""

from __future__ import annotations

import numpy as np
import pytest
from simd_variants import SIMD_VARIANTS, only_with_simd

from ggufsm._core import kernels
from ggufsm.spec.errors import InvalidInput

RNG = np.random.default_rng(2024)


def close(ours, reference, rtol=2e-6, atol=1e-6):
    np.testing.assert_allclose(ours.astype(np.float64), reference, rtol=rtol, atol=atol)


@pytest.mark.parametrize("with_weight", [True, False])
def test_rmsnorm_divides_by_the_root_mean_square(with_weight):
    x = (RNG.standard_normal((3, 576)) * 4).astype(np.float32)
    weight = RNG.standard_normal(576).astype(np.float32) if with_weight else None
    eps = 1e-5
    reference = x / np.sqrt((x.astype(np.float64) ** 2).mean(axis=1, keepdims=True) + eps)
    if with_weight:
        reference = reference * weight
    close(kernels.rmsnorm(x, weight, eps), reference)


def rope_reference(x, n_rot, positions, base, neox):
    x = x.astype(np.float64).copy()
    half = n_rot // 2
    inv_freq = base ** (-2.0 * np.arange(half) / n_rot)
    theta = positions[:, None, None] * inv_freq[None, None, :]
    cos, sin = np.cos(theta), np.sin(theta)
    first = np.arange(half) if neox else 2 * np.arange(half)
    second = first + half if neox else first + 1
    a, b = x[..., first].copy(), x[..., second].copy()
    x[..., first] = a * cos - b * sin
    x[..., second] = a * sin + b * cos
    return x


@pytest.mark.parametrize("neox", [False, True], ids=["normal", "neox"])
@pytest.mark.parametrize("n_rot", [64, 32])
def test_rope_rotates_the_first_n_rot_dims_in_pairs(neox, n_rot):
    x = RNG.standard_normal((5, 3, 64)).astype(np.float32)
    positions = np.array([0, 1, 7, 300, 4095], dtype=np.int32)
    out = kernels.rope(x, n_rot, positions, 10000.0, neox)
    close(out, rope_reference(x, n_rot, positions, 10000.0, neox), rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(out[..., n_rot:], x[..., n_rot:])


def test_rope_normal_and_neox_pair_different_dims():
    x = RNG.standard_normal((1, 1, 8)).astype(np.float32)
    positions = np.array([3], dtype=np.int32)
    assert not np.allclose(kernels.rope(x, 8, positions, 10000.0, False), kernels.rope(x, 8, positions, 10000.0, True))


def test_rope_refuses_an_odd_n_rot():
    with pytest.raises(InvalidInput, match="n_rot 7"):
        kernels.rope(np.zeros((1, 1, 8), np.float32), 7, np.zeros(1, np.int32), 10000.0, False)


def test_softmax_is_stable_for_large_logits():
    x = np.array([[1000.0, 999.0, -50.0], [0.0, 0.0, 0.0]], dtype=np.float32)
    shifted = x.astype(np.float64) - x.max(axis=1, keepdims=True)
    reference = np.exp(shifted) / np.exp(shifted).sum(axis=1, keepdims=True)
    close(kernels.softmax(x), reference)


def test_silu_is_x_times_sigmoid():
    x = np.linspace(-20, 20, 1001, dtype=np.float32)
    close(kernels.silu(x), x / (1 + np.exp(-x.astype(np.float64))), rtol=1e-6)


def test_gelu_is_the_tanh_approximation():
    x = np.linspace(-10, 10, 1001, dtype=np.float32)
    xd = x.astype(np.float64)
    reference = 0.5 * xd * (1 + np.tanh(np.sqrt(2 / np.pi) * (xd + 0.044715 * xd**3)))
    close(kernels.gelu(x), reference, rtol=1e-5, atol=1e-6)


def test_swiglu_and_geglu_gate_the_up_projection():
    gate = RNG.standard_normal(300).astype(np.float32)
    up = RNG.standard_normal(300).astype(np.float32)
    close(kernels.swiglu(gate, up), kernels.silu(gate).astype(np.float64) * up, rtol=1e-6)
    close(kernels.geglu(gate, up), kernels.gelu(gate).astype(np.float64) * up, rtol=1e-6)


ACTIVATIONS = {
    "silu": lambda x, up: kernels.silu(x),
    "gelu": lambda x, up: kernels.gelu(x),
    "swiglu": kernels.swiglu,
    "geglu": kernels.geglu,
}


@only_with_simd
@pytest.mark.parametrize("isa", SIMD_VARIANTS)
@pytest.mark.parametrize("name", ACTIVATIONS, ids=list(ACTIVATIONS))
def test_simd_activations_agree_with_the_scalar_ones(isa, name):
    # 16-lane bodies and a scalar tail of 7; values from deep in both saturated ends through zero.
    x = np.concatenate([np.linspace(-30, 30, 2000), RNG.standard_normal(1000) * 3, [0.0, -0.0, 1e-30, -1e-30]])
    x = x[: len(x) - len(x) % 16 + 7].astype(np.float32)
    up = RNG.standard_normal(len(x)).astype(np.float32)
    before = kernels.active_isa()
    try:
        kernels.force_isa("scalar")
        scalar = ACTIVATIONS[name](x, up)
        kernels.force_isa(isa)
        simd = ACTIVATIONS[name](x, up)
        assert np.isnan(ACTIVATIONS[name](np.full(16, np.nan, np.float32), np.ones(16, np.float32))).all()
    finally:
        kernels.force_isa(before)
    # x * sigmoid(z) through a 2-ulp exp and one divide, against tanhf / expf: a few float32 ulps.
    np.testing.assert_allclose(simd, scalar, rtol=2e-6, atol=1e-7)
