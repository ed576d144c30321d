"""Well-formed random quantized weights for the kernel tests and benchmark.

Random bytes are a valid encoding of every ggml block format except for the
float16 scale fields, where random bits can spell inf or NaN; those fields are
overwritten here with small finite scales so products stay finite. Block sizes
come from the gguf package (GGML_QUANT_SIZES), not a copy of our own.
"""

from __future__ import annotations

import numpy as np
from gguf.constants import GGML_QUANT_SIZES, GGMLQuantizationType

# The weight types the C++ kernels handle, in ggml id order.
KERNEL_TYPES: tuple[GGMLQuantizationType, ...] = tuple(GGMLQuantizationType[name] for name in (
    "F32", "F16", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_0", "Q2_K", "Q3_K", "Q4_K", "Q5_K", "Q6_K", "BF16"))

# Byte offsets of the float16 scale/min fields inside one block (ggml-common.h).
_SCALE_FIELDS: dict[str, tuple[int, ...]] = {
    "Q4_0": (0,), "Q4_1": (0, 2), "Q5_0": (0,), "Q5_1": (0, 2), "Q8_0": (0,),
    "Q2_K": (80, 82), "Q3_K": (108,), "Q4_K": (0, 2), "Q5_K": (0, 2), "Q6_K": (208,),
}


def row_bytes(qtype: GGMLQuantizationType, cols: int) -> int:
    block_size, block_bytes = GGML_QUANT_SIZES[qtype]
    if cols % block_size:
        raise ValueError(f"{qtype.name}: cols {cols} is not a multiple of the block size {block_size}")
    return cols // block_size * block_bytes


def random_weights(qtype: GGMLQuantizationType, rows: int, cols: int, rng: np.random.Generator,
                   scale: float = 0.01) -> np.ndarray:
    """uint8 [rows, row_bytes(qtype, cols)]: rows of random blocks with finite scales of about `scale`."""
    if qtype == GGMLQuantizationType.F32:
        return rng.standard_normal((rows, cols), dtype=np.float32).view(np.uint8)
    if qtype == GGMLQuantizationType.F16:
        return rng.standard_normal((rows, cols)).astype(np.float16).view(np.uint8)
    if qtype == GGMLQuantizationType.BF16:
        bits = rng.standard_normal((rows, cols)).astype(np.float32).view(np.uint32) >> 16
        return bits.astype(np.uint16).view(np.uint8)
    block_size, block_bytes = GGML_QUANT_SIZES[qtype]
    blocks = rng.integers(0, 256, size=(rows * cols // block_size, block_bytes), dtype=np.uint8)
    for offset in _SCALE_FIELDS[qtype.name]:
        scales = (rng.uniform(0.25, 1.0, size=blocks.shape[0]) * scale).astype(np.float16)
        blocks[:, offset:offset + 2] = scales.view(np.uint8).reshape(-1, 2)
    return blocks.reshape(rows, -1)
