"""Activation quantization (kernel_set.h, quantize_blocks): the scalar reference gives matmul.h's
stated codes (d = amax / 127, q = nearest-even(x * 127 / amax), in float32) bit for bit, every
SIMD variant gives the scalar bytes exactly, and a block with an inf or a NaN gets zero codes and
a non-finite scale, so the bad input stays visible in the product."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from simd_variants import SIMD_VARIANTS, only_with_simd

from ggufsm._core import kernels
from ggufsm.spec.errors import InvalidInput

# The two activation block sizes: Q8_32 (the 32-block weights) and Q8_K (the k-quants).
BLOCKS = [32, 256]


def quantized(x: np.ndarray, block: int, isa: str):
    kernels.force_isa(isa)
    codes, scales, sums = kernels.quantize_blocks(np.ascontiguousarray(x, dtype=np.float32), block)
    return np.asarray(codes), np.asarray(scales), np.asarray(sums)


def oracle(x: np.ndarray, block: int):
    """matmul.h's stated quantization in numpy float32 (finite blocks)."""
    blocks = x.astype(np.float32).reshape(-1, block)
    amax = np.abs(blocks).max(axis=1, keepdims=True)
    safe = np.where(amax == 0, np.float32(1), amax)
    codes = np.rint(blocks * (np.float32(127) / safe)).astype(np.int8)
    scales = (amax / np.float32(127)).reshape(-1).astype(np.float32)
    sums = codes.reshape(-1, 16).astype(np.int32).sum(axis=1).astype(np.int16)
    return codes.reshape(-1), scales, sums


def same_bytes(a, b) -> bool:
    return all(np.asarray(p).tobytes() == np.asarray(q).tobytes() for p, q in zip(a, b, strict=True))


def activations(rng: np.random.Generator, blocks: int, block: int) -> np.ndarray:
    """Blocks of different magnitudes (as a residual stream has), some all zero."""
    x = rng.standard_normal(blocks * block).astype(np.float32)
    x *= np.repeat(np.float32(10.0) ** rng.integers(-6, 4, blocks).astype(np.float32), block)
    x[:block] = 0
    return x


@pytest.mark.parametrize("block", BLOCKS)
def test_scalar_quantization_is_the_stated_rounding_bit_for_bit(block, restore_isa):
    x = activations(np.random.default_rng(block), 40, block)
    assert same_bytes(quantized(x, block, "scalar"), oracle(x, block))


def test_ties_round_to_the_even_code(restore_isa):
    # amax 127 makes 127 / amax exactly 1: each x is its own code before rounding.
    x = np.zeros(32, dtype=np.float32)
    x[:6] = [127.0, 2.5, 3.5, -2.5, -3.5, 0.5]
    for isa in ["scalar", *SIMD_VARIANTS]:
        codes, scales, _ = quantized(x, 32, isa)
        assert codes[:6].tolist() == [127, 2, 4, -2, -4, 0], isa
        assert scales[0] == np.float32(1.0)


@only_with_simd
@pytest.mark.parametrize("isa", SIMD_VARIANTS)
@pytest.mark.parametrize("block", BLOCKS)
def test_simd_quantization_gives_the_scalar_bytes(isa, block, restore_isa):
    x = activations(np.random.default_rng(7 + block), 64, block)
    assert same_bytes(quantized(x, block, isa), quantized(x, block, "scalar"))


@only_with_simd
@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    block=st.sampled_from(BLOCKS),
    blocks=st.integers(1, 5),
    exponent=st.integers(-40, 38),
)
def test_simd_quantization_gives_the_scalar_bytes_for_any_magnitude(seed, block, blocks, exponent):
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal(blocks * block) * np.float64(10.0) ** exponent).astype(np.float32)
    before = kernels.active_isa()
    try:
        reference = quantized(x, block, "scalar")
        for isa in SIMD_VARIANTS:
            assert same_bytes(quantized(x, block, isa), reference), isa
    finally:
        kernels.force_isa(before)


@pytest.mark.parametrize("block", BLOCKS)
@pytest.mark.parametrize("bad", [np.inf, -np.inf, np.nan], ids=["inf", "-inf", "nan"])
def test_a_non_finite_block_gets_zero_codes_and_a_non_finite_scale_and_leaves_the_others_alone(block, bad, restore_isa):
    x = activations(np.random.default_rng(3), 3, block)
    x[block + 5] = bad
    clean = x.copy()
    clean[block : 2 * block] = 0
    for isa in ["scalar", *SIMD_VARIANTS]:
        codes, scales, sums = quantized(x, block, isa)
        assert not np.any(codes[block : 2 * block]), isa
        assert not np.any(sums[block // 16 : 2 * block // 16]), isa
        assert not np.isfinite(scales[1]) and (np.isnan(scales[1]) == np.isnan(bad)), isa
        expected = oracle(clean, block)
        keep = np.r_[0:block, 2 * block : 3 * block]
        assert codes[keep].tobytes() == expected[0][keep].tobytes(), isa
        assert scales[[0, 2]].tobytes() == expected[1][[0, 2]].tobytes(), isa


@pytest.mark.parametrize("block", BLOCKS)
def test_a_block_too_small_to_invert_gets_zero_codes_in_every_variant(block, restore_isa):
    # amax = the smallest subnormal: 127 / amax overflows to inf.
    x = np.zeros(block, dtype=np.float32)
    x[3] = np.float32(1e-45)
    for isa in ["scalar", *SIMD_VARIANTS]:
        codes, scales, _ = quantized(x, block, isa)
        assert not np.any(codes), isa
        assert scales[0] == np.float32(1e-45) / np.float32(127), isa


def test_a_block_that_is_not_a_multiple_of_32_is_refused_by_name():
    with pytest.raises(InvalidInput, match="multiple of 32"):
        kernels.quantize_blocks(np.zeros(48, dtype=np.float32), 16)


@pytest.mark.parametrize("block", BLOCKS)
def test_the_largest_codes_give_the_largest_sums_of_sixteen_without_wrapping(block, restore_isa):
    # Every element at +-amax: codes +-127, sums of 16 at +-2032 (int16 holds them).
    x = np.full(2 * block, 3.0, dtype=np.float32)
    x[block:] = -3.0
    for isa in ["scalar", *SIMD_VARIANTS]:
        codes, _, sums = quantized(x, block, isa)
        assert set(codes[:block].tolist()) == {127} and set(codes[block:].tolist()) == {-127}, isa
        assert set(sums[: block // 16].tolist()) == {2032} and set(sums[block // 16 :].tolist()) == {-2032}, isa


def embedding_rows(path, rows: int) -> np.ndarray:
    """The first `rows` token embeddings of a real model, dequantized: real activation magnitudes."""
    from gguf.quants import dequantize

    from ggufsm.reference.model.gguf_file import open_gguf

    with open_gguf(path) as model:
        info = model.tensors["token_embd.weight"]
        row_bytes = kernels.row_bytes(int(info.type), int(info.shape[0]))
        raw = np.asarray(model.tensor_data("token_embd.weight")).view(np.uint8).ravel()[: rows * row_bytes]
        raw = raw.reshape(rows, row_bytes)
        return np.ascontiguousarray(dequantize(raw, info.type), dtype=np.float32).reshape(rows, -1)


@pytest.mark.real_model
@pytest.mark.parametrize("model_path", ["smollm2_path", "gemma3_path"])
@pytest.mark.parametrize("block", BLOCKS)
def test_the_real_models_embeddings_quantize_to_the_same_bytes_in_every_variant(model_path, block, request, restore_isa):
    x = embedding_rows(request.getfixturevalue(model_path), 64).ravel()
    reference = quantized(x, block, "scalar")
    assert same_bytes(reference, oracle(x, block))
    for isa in SIMD_VARIANTS:
        assert same_bytes(quantized(x, block, isa), reference), isa
