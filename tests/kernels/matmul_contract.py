"""The numeric contract of ggufsm._core.kernels.matmul (cpp/kernels/matmul.h), as a function."""

from __future__ import annotations

import numpy as np
from gguf.constants import GGMLQuantizationType
from gguf.quants import dequantize

FLOAT_TYPES = {GGMLQuantizationType.F32, GGMLQuantizationType.F16, GGMLQuantizationType.BF16}
K_QUANTS = {GGMLQuantizationType[name] for name in ("Q2_K", "Q3_K", "Q4_K", "Q5_K", "Q6_K")}
FLOAT_RELATIVE = 1e-5


def activation_block(qtype: GGMLQuantizationType) -> int:
    """The block over which activations share one 8-bit scale for this weight type (1: not quantized)."""
    if qtype in FLOAT_TYPES:
        return 1
    return 256 if qtype in K_QUANTS else 32


def dequantized(qtype: GGMLQuantizationType, weights: np.ndarray, rows: int, cols: int) -> np.ndarray:
    return dequantize(weights.reshape(rows, -1), qtype).reshape(rows, cols).astype(np.float64)


def reference_and_bound(qtype, weights, rows, cols, x):
    """(y in float64, the contract's per-element error bound), both [n, rows]."""
    w = dequantized(qtype, weights, rows, cols)
    x = np.atleast_2d(x).astype(np.float64)
    y = x @ w.T
    magnitude = np.abs(x) @ np.abs(w).T
    block = activation_block(qtype)
    if block == 1:
        quantization = np.zeros_like(y)
    else:
        # Per activation element: half its block's scale d = amax / 127.
        amax = np.abs(x).reshape(x.shape[0], -1, block).max(axis=2)
        half_step = np.repeat(amax / 127 / 2, block, axis=1)
        quantization = half_step @ np.abs(w).T
    return y, quantization + FLOAT_RELATIVE * magnitude + 1e-30


def as_quantized(qtype: GGMLQuantizationType, x: np.ndarray) -> np.ndarray:
    """x after the stated 8-bit quantization (float32 arithmetic, as the kernels do), as float64."""
    block = activation_block(qtype)
    x = np.atleast_2d(x).astype(np.float32)
    if block == 1:
        return x.astype(np.float64)
    blocks = x.reshape(x.shape[0], -1, block)
    amax = np.abs(blocks).max(axis=2, keepdims=True)
    safe = np.where(amax == 0, np.float32(1), amax)
    codes = np.rint(blocks * (np.float32(127) / safe))
    scales = np.where(amax == 0, np.float32(0), amax / np.float32(127))
    return (codes.astype(np.float64) * scales.astype(np.float64)).reshape(x.shape)
