"""A batched decode step attends every session's token in one dispatch (attention.h's attention_decode_batch)
and the KV store writes halves with the kernel set's to_half. The rules: each token's output is bit for bit
what attention() gives it alone, in every variant, on the models' shapes, short and long (segments split
across threads), sliding or not; to_half writes fp32_to_fp16's bits in every variant, NaN included; bad
queries are refused by name before anything runs."""

from __future__ import annotations

import zlib

import numpy as np
import pytest
from simd_variants import SIMD_VARIANTS, only_with_simd

from ggufsm._core import kernels
from ggufsm.spec.errors import InvalidInput

# (n_head, n_head_kv, hd, window) of SmolLM2, Gemma 3 (global and sliding) and an hd the SIMD kernels do not take.
SHAPES = {
    "smollm2": (9, 3, 64, 0),
    "gemma3": (4, 1, 256, 0),
    "gemma3-sliding": (4, 1, 256, 77),
    "odd-hd": (4, 2, 24, 0),
}
# Positions of the sessions of one step: short (one unit per KV head), long (split into segments, then
# combined), and mixed in one step.
POSITIONS = {"short": [3, 17, 40, 0], "long": [700, 1030, 600], "mixed": [5, 900, 64, 1031, 300]}


def rng_for(*key) -> np.random.Generator:
    return np.random.default_rng(zlib.crc32(repr(key).encode()))


def sessions(shape, positions, tag):
    n_head, n_head_kv, hd, _ = SHAPES[shape]
    rng = rng_for(tag, shape, tuple(positions))
    made = []
    for pos in positions:
        n_ctx = pos + 1 + int(rng.integers(0, 20))  # each session its own context length
        q = (rng.standard_normal((n_head, hd)) * 2).astype(np.float32)
        k = (rng.standard_normal((n_head_kv, n_ctx, hd)) * 2).astype(np.float32)
        v = rng.standard_normal((n_head_kv, n_ctx, hd)).astype(np.float32)
        made.append((q, k, v, pos))
    return made


@pytest.mark.parametrize("isa", ["scalar", *SIMD_VARIANTS])
@pytest.mark.parametrize("half", [False, True], ids=["f32", "f16"])
@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("positions", POSITIONS, ids=list(POSITIONS))
@pytest.mark.parametrize("shape", SHAPES, ids=list(SHAPES))
def test_each_token_of_a_batched_step_gets_the_bits_it_gets_alone(isa, half, threads, positions, shape, restore_isa):
    kernels.force_isa(isa)
    hd, window = SHAPES[shape][2], SHAPES[shape][3]
    made = sessions(shape, POSITIONS[positions], "alone")
    together = kernels.attention_decode_batch(made, hd ** -0.5, window, threads, half=half)
    for i, (q, k, v, pos) in enumerate(made):
        alone = kernels.attention(q[None], k, v, pos, hd ** -0.5, window, threads, half=half)[0]
        assert np.array_equal(together[i].view(np.uint32), alone.view(np.uint32)), f"session {i} at {pos} differs"


@only_with_simd
@pytest.mark.parametrize("isa", SIMD_VARIANTS)
@pytest.mark.parametrize("shape", SHAPES, ids=list(SHAPES))
def test_batched_step_variant_agrees_with_scalar(isa, shape, restore_isa):
    hd, window = SHAPES[shape][2], SHAPES[shape][3]
    made = sessions(shape, POSITIONS["mixed"], "agree")
    kernels.force_isa("scalar")
    scalar = kernels.attention_decode_batch(made, hd ** -0.5, window, 2, half=True)
    kernels.force_isa(isa)
    simd = kernels.attention_decode_batch(made, hd ** -0.5, window, 2, half=True)
    for s, v in zip(scalar, simd, strict=True):  # as test_attention.py's variant test: within twice 2e-5 of each other
        np.testing.assert_allclose(v, s, rtol=4e-5, atol=4e-5)


def test_a_batched_step_refuses_a_position_past_a_sessions_cache():
    good = sessions("smollm2", [3], "refuse")[0]
    q, k, v, _ = sessions("smollm2", [5], "refuse2")[0]
    with pytest.raises(InvalidInput, match="do not fit the cache of n_ctx"):
        kernels.attention_decode_batch([good, (q, k, v, k.shape[1])], 0.125)


def test_a_batched_step_refuses_heads_that_do_not_group():
    q = np.zeros((3, 16), np.float32)
    cache = np.zeros((2, 16, 16), np.float32)
    with pytest.raises(InvalidInput, match="n_head 3 .* n_head_kv 2"):
        kernels.attention_decode_batch([(q, cache, cache, 0)], 1.0)


# Halves: exact ones, ties either way, the largest finite and what rounds past it, subnormal halves and
# the fp32 values below them, infinities, and NaNs with payloads (F16C keeps a payload; fp32_to_fp16
# writes one quiet NaN), spread over the vector lanes and the tail.
def half_cases() -> np.ndarray:
    bits = np.array([0x7FC00000, 0xFFC00000, 0x7F800001, 0xFF812345, 0x7FBFFFFF], np.uint32).view(np.float32)
    special = np.array([0.0, -0.0, 1.0, 1 + 2**-11, 1 + 3 * 2**-11, 65504.0, 65519.0, 65520.0, -70000.0, 2**-24,
                        2**-25, 3 * 2**-26, 2**-14 - 2**-25, 1e-30, np.inf, -np.inf], np.float32)
    rng = rng_for("halves")
    spread = (rng.standard_normal(200) * np.exp2(rng.integers(-30, 18, 200))).astype(np.float32)
    values = np.concatenate([special, bits, spread])
    return values[rng.permutation(len(values))]


@pytest.mark.parametrize("isa", ["scalar", *SIMD_VARIANTS])
def test_to_half_rounds_to_nearest_even_as_numpy_does(isa, restore_isa):
    kernels.force_isa(isa)
    values = half_cases()
    finite = ~np.isnan(values)
    ours = kernels.to_half(values)
    with np.errstate(over="ignore"):  # past 65519.99 a half is an infinity, as the cases mean it to be
        halves = values[finite].astype(np.float16)
    np.testing.assert_array_equal(ours[finite], halves.view(np.uint16))
    # A NaN becomes the one quiet NaN of its sign.
    signs = np.signbit(values[~finite]).astype(np.uint16) << 15
    np.testing.assert_array_equal(ours[~finite], signs | 0x7E00)


@only_with_simd
@pytest.mark.parametrize("isa", SIMD_VARIANTS)
@pytest.mark.parametrize("n", [1, 7, 8, 9, 64, 257])
def test_to_half_variant_writes_the_scalar_bits(isa, n, restore_isa):
    values = np.resize(half_cases(), n)
    kernels.force_isa("scalar")
    scalar = kernels.to_half(values)
    kernels.force_isa(isa)
    np.testing.assert_array_equal(kernels.to_half(values), scalar)
