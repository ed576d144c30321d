"""Attention over the KV cache (cpp attention.h) agrees with softmax(q.k) . v in float64.

Every ISA variant runs the same online softmax as the scalar reference kernel, so they agree
to float rounding; halves in the cache are rounded to nearest even, as numpy's float16 is.
"""

from __future__ import annotations

import zlib

import numpy as np
import pytest
from simd_variants import SIMD_VARIANTS, only_with_simd

from ggufsm._core import kernels
from ggufsm.spec.errors import InvalidInput


def rng_for(*key) -> np.random.Generator:
    return np.random.default_rng(zlib.crc32(repr(key).encode()))


def attention_reference(q, k_cache, v_cache, start_pos, scale, window):
    n_tok, n_head, hd = q.shape
    group = n_head // k_cache.shape[0]
    out = np.zeros((n_tok, n_head, hd))
    for t in range(n_tok):
        pos = start_pos + t
        first = max(0, pos - window + 1) if window else 0
        for h in range(n_head):
            keys = k_cache[h // group, first:pos + 1].astype(np.float64)
            values = v_cache[h // group, first:pos + 1].astype(np.float64)
            scores = scale * keys @ q[t, h]
            p = np.exp(scores - scores.max())
            out[t, h] = (p / p.sum()) @ values
    return out


def inputs(rng, n_tok, n_head, n_head_kv, hd, n_ctx, spread=1.0):
    q = (rng.standard_normal((n_tok, n_head, hd)) * spread).astype(np.float32)
    k_cache = (rng.standard_normal((n_head_kv, n_ctx, hd)) * spread).astype(np.float32)
    v_cache = rng.standard_normal((n_head_kv, n_ctx, hd)).astype(np.float32)
    return q, k_cache, v_cache


def rounded_to_half(x):
    return x.astype(np.float16).astype(np.float32)


def close(ours, reference, tolerance=1e-5):
    np.testing.assert_allclose(ours.astype(np.float64), reference, rtol=tolerance, atol=tolerance)


@pytest.mark.parametrize("half", [False, True], ids=["f32", "f16"])
@pytest.mark.parametrize("window", [0, 5])
@pytest.mark.parametrize("n_threads", [1, 2])
@pytest.mark.parametrize("start_pos,n_tok", [(0, 7), (9, 1), (4, 6), (17, 15)])
def test_attention_is_causal_grouped_query_softmax_over_the_cache(half, window, n_threads, start_pos, n_tok):
    n_head, n_head_kv, hd, n_ctx = 6, 2, 16, 32
    q, k_cache, v_cache = inputs(rng_for(half, window, n_threads, start_pos, n_tok), n_tok, n_head, n_head_kv, hd, n_ctx)
    scale = hd ** -0.5
    out = kernels.attention(q, k_cache, v_cache, start_pos, scale, window, n_threads, half=half)
    if half:  # a half cache holds halves, and the query meets it as a half (as in llama.cpp)
        q, k_cache, v_cache = rounded_to_half(q), rounded_to_half(k_cache), rounded_to_half(v_cache)
    close(out, attention_reference(q, k_cache, v_cache, start_pos, scale, window))


# The models' shapes (SmolLM2: 9 heads over 3, hd 64; Gemma 3: 4 over 1, hd 256, window 512), an hd
# that is not a multiple of the SIMD width (the scalar kernel runs), and long single-token decodes,
# whose positions are split into segments across threads and recombined.
SHAPES = {
    "smollm2-prefill": dict(n_head=9, n_head_kv=3, hd=64, n_ctx=160, start_pos=3, n_tok=130, window=0),
    "gemma3-prefill": dict(n_head=4, n_head_kv=1, hd=256, n_ctx=96, start_pos=0, n_tok=90, window=0),
    "gemma3-sliding": dict(n_head=4, n_head_kv=1, hd=256, n_ctx=200, start_pos=50, n_tok=140, window=77),
    "odd-hd": dict(n_head=4, n_head_kv=2, hd=24, n_ctx=48, start_pos=5, n_tok=40, window=0),
    "smollm2-decode": dict(n_head=9, n_head_kv=3, hd=64, n_ctx=1024, start_pos=1000, n_tok=1, window=0),
    "gemma3-decode": dict(n_head=4, n_head_kv=1, hd=256, n_ctx=1040, start_pos=1030, n_tok=1, window=0),
    "gemma3-decode-sliding": dict(n_head=4, n_head_kv=1, hd=256, n_ctx=1040, start_pos=1030, n_tok=1, window=512),
}


@pytest.mark.parametrize("shape", SHAPES, ids=list(SHAPES))
def test_attention_on_model_shapes_equals_the_reference(shape):
    s = SHAPES[shape]
    q, k_cache, v_cache = inputs(rng_for(shape), s["n_tok"], s["n_head"], s["n_head_kv"], s["hd"], s["n_ctx"], spread=2.0)
    scale = s["hd"] ** -0.5
    out = kernels.attention(q, k_cache, v_cache, s["start_pos"], scale, s["window"], 2, half=True)
    reference = attention_reference(rounded_to_half(q), rounded_to_half(k_cache), rounded_to_half(v_cache), s["start_pos"],
                                    scale, s["window"])
    close(out, reference, tolerance=2e-5)


@only_with_simd
@pytest.mark.parametrize("isa", SIMD_VARIANTS)
@pytest.mark.parametrize("half", [False, True], ids=["f32", "f16"])
@pytest.mark.parametrize("shape", SHAPES, ids=list(SHAPES))
def test_variant_agrees_with_scalar(isa, half, shape, restore_isa):
    s = SHAPES[shape]
    q, k_cache, v_cache = inputs(rng_for(isa, half, shape), s["n_tok"], s["n_head"], s["n_head_kv"], s["hd"], s["n_ctx"], spread=2.0)
    args = (q, k_cache, v_cache, s["start_pos"], s["hd"] ** -0.5, s["window"], 2)
    kernels.force_isa("scalar")
    scalar = kernels.attention(*args, half=half)
    kernels.force_isa(isa)
    simd = kernels.attention(*args, half=half)
    # Same cache, same online softmax in blocks of 64; only summation order and exp's last bits differ:
    # each is within 2e-5 of float64 (the test above), so they are within twice that of each other.
    np.testing.assert_allclose(simd, scalar, rtol=4e-5, atol=4e-5)


def test_attention_ignores_cache_positions_after_the_query():
    rng = rng_for("after")
    q = rng.standard_normal((2, 2, 16)).astype(np.float32)
    k_cache = rng.standard_normal((1, 40, 16)).astype(np.float32)
    v_cache = rng.standard_normal((1, 40, 16)).astype(np.float32)
    before = kernels.attention(q, k_cache, v_cache, 3, 0.3, half=True)
    k_cache[:, 5:] = np.nan
    v_cache[:, 5:] = np.inf
    np.testing.assert_array_equal(kernels.attention(q, k_cache, v_cache, 3, 0.3, half=True), before)


def test_a_half_cache_holds_values_rounded_to_nearest_even():
    # 1 + 2^-11 lies halfway between two halves: nearest even rounds it down to 1, and 1 + 3 * 2^-11 up.
    values = np.array([1 + 2**-11, 1 + 3 * 2**-11], np.float32).reshape(1, 2, 1).repeat(16, axis=2)
    keys = np.zeros_like(values)
    q = np.zeros((1, 1, 16), np.float32)
    alone = kernels.attention(q, keys, values, 0, 1.0, half=True)  # position 0 sees only itself
    np.testing.assert_array_equal(alone[0, 0], np.float32(1.0))
    mean = kernels.attention(q, keys, values, 1, 1.0, half=True)  # equal scores: the mean of both values
    np.testing.assert_array_equal(mean[0, 0], np.float32((1.0 + (1 + 2**-9)) / 2))


def test_attention_refuses_heads_that_do_not_group():
    cache = np.zeros((2, 4, 8), np.float32)
    with pytest.raises(InvalidInput, match="n_head 3 .* n_head_kv 2"):
        kernels.attention(np.zeros((1, 3, 8), np.float32), cache, cache, 0, 1.0)


def test_attention_refuses_positions_beyond_the_cache():
    cache = np.zeros((1, 4, 8), np.float32)
    with pytest.raises(InvalidInput, match="n_ctx 4"):
        kernels.attention(np.zeros((2, 1, 8), np.float32), cache, cache, 3, 1.0)


# Prefill tiles: tokens attended together (query tiles, sliding windows whose block grids differ
# token by token, a short chunk cut into smaller tiles) against each token attended alone on one
# thread, where it runs as a decode step's single unit.
TILED = {
    "gemma3-deep": dict(n_head=4, n_head_kv=1, hd=256, n_ctx=640, start_pos=300, n_tok=290, window=0),
    "gemma3-sliding": dict(n_head=4, n_head_kv=1, hd=256, n_ctx=640, start_pos=200, n_tok=300, window=77),
    "smollm2": dict(n_head=9, n_head_kv=3, hd=64, n_ctx=400, start_pos=13, n_tok=200, window=0),
    "short-chunk": dict(n_head=4, n_head_kv=1, hd=256, n_ctx=400, start_pos=350, n_tok=5, window=0),
    "odd-hd": dict(n_head=6, n_head_kv=2, hd=24, n_ctx=160, start_pos=5, n_tok=100, window=33),
}


@pytest.mark.parametrize("isa", ["scalar", *SIMD_VARIANTS])
@pytest.mark.parametrize("half", [False, True], ids=["f32", "f16"])
@pytest.mark.parametrize("shape", TILED, ids=list(TILED))
def test_a_token_attended_in_a_prefill_tile_gets_the_bits_it_gets_alone(isa, half, shape, restore_isa):
    s = TILED[shape]
    q, k_cache, v_cache = inputs(rng_for("tiled", shape), s["n_tok"], s["n_head"], s["n_head_kv"], s["hd"], s["n_ctx"], spread=2.0)
    scale = s["hd"] ** -0.5
    kernels.force_isa(isa)
    together = kernels.attention(q, k_cache, v_cache, s["start_pos"], scale, s["window"], 2, half=half)
    alone = [kernels.attention(q[t:t + 1], k_cache, v_cache, s["start_pos"] + t, scale, s["window"], 1, half=half)
             for t in range(s["n_tok"])]
    np.testing.assert_array_equal(together, np.concatenate(alone))


# One decode token at the models' shapes attending fewer than 256 positions (on the calling thread), 256 to 511 (on the pool,
# one segment per KV head), from 512 (segments: there the split follows the thread count, by design).
DECODE_AT = [0, 17, 130, 254, 255, 300, 510]  # attending pos + 1 positions: 255 of them on the caller, 511 the most unsegmented


@pytest.mark.parametrize("isa", ["scalar", *SIMD_VARIANTS])
@pytest.mark.parametrize("half", [False, True], ids=["f32", "f16"])
@pytest.mark.parametrize("heads", [(9, 3, 64, 0), (4, 1, 256, 0), (4, 1, 256, 200)], ids=["smollm2", "gemma3", "gemma3-sliding"])
def test_one_decode_token_below_512_positions_gets_the_same_bits_on_one_and_two_threads(isa, half, heads, restore_isa):
    n_head, n_head_kv, hd, window = heads
    n_ctx = 528
    kernels.force_isa(isa)
    q, k_cache, v_cache = inputs(rng_for("threads", heads, half), len(DECODE_AT), n_head, n_head_kv, hd, n_ctx, spread=2.0)
    for t, pos in enumerate(DECODE_AT):
        args = (q[t:t + 1], k_cache, v_cache, pos, hd ** -0.5, window)
        one, two = (kernels.attention(*args, threads, half=half) for threads in (1, 2))
        assert np.array_equal(one.view(np.uint32), two.view(np.uint32)), pos
