"""Every weight of a model is a finite number: checked once per file at load.

A NaN or an infinity in a weight makes every forward that reads it produce
non-finite logits, and sampling from those draws an arbitrary token (NaN
compares false with everything). The table has no generate outcome for a
model that cannot compute, so the check is the load's (docs/spec/interpretation.md):
such a file is InvalidModel, naming the tensor and the byte offset, and never
installed.

The floats of a file are its float tensors (checked whole) and the scales of
its quantized blocks (a block's quants are small integers, finite by
construction). A float is non-finite exactly when its exponent bits are all
ones, so every check is one mask over the raw bits, read in place from the
mapping with a stride of one block: no float conversion, no copy.

The scan runs in the core (`_core.first_masked`, cpp/gguf/finite_scan.cpp):
numpy's mask builds a temporary per tensor and cannot stop early, and took
0.109 s of Gemma 3's 0.51 s load (263 tensors, cProfile, quiet machine).
`_first_masked_numpy` stays as the oracle the core is tested against.

Most of a file's scales are checked before this runs, in a read the load
makes anyway: the repack reads every layer matrix once, and checks each
group's scales as it writes them; the Q8_0 matrices it leaves (the embedding:
Gemma 3's 178 MB) are scanned across the model's thread pool
(cpp/forward/weights.cpp, `_core.LlamaModel.scales_checked`). Those verdicts
come in as `checked` and stand in for the scan of their tensors; the walk, its
order and its error stay here, so the verdict and the named error are the
same (tests/reliability/test_fused_finite_check.py). Re-reading the repacked
matrices here cost a second pass over pages the repack had just dropped from
the map.
"""

from __future__ import annotations

from collections.abc import Mapping

import gguf
import numpy as np
from gguf import GGMLQuantizationType as T

from ggufsm import _core
from ggufsm.spec.errors import InvalidModel

# The exponent mask of each float width: a value is NaN or infinite iff (bits & mask) == mask.
EXPONENT_MASK = {2: 0x7C00, 4: 0x7F800000}
BF16_EXPONENT_MASK = 0x7F80
# Where a block keeps its float16 scales (byte offsets within the block; ggml-common.h's block_* structs).
BLOCK_SCALE_OFFSETS: dict[T, tuple[int, ...]] = {
    T.Q4_0: (0,), T.Q4_1: (0, 2), T.Q5_0: (0,), T.Q5_1: (0, 2), T.Q8_0: (0,),
    T.Q2_K: (80, 82), T.Q3_K: (108,), T.Q4_K: (0, 2), T.Q5_K: (0, 2), T.Q6_K: (208,),
}
FLOAT_WIDTHS = {T.F32: (4, EXPONENT_MASK[4]), T.F16: (2, EXPONENT_MASK[2]), T.BF16: (2, BF16_EXPONENT_MASK)}


def check_finite_weights(gguf_file, checked: Mapping[int, int | None] | None = None) -> None:
    """InvalidModel naming the first tensor (and byte offset) holding a NaN or an infinity.
    checked: a quantized tensor's offset in the file -> its `first_non_finite`, already found by the core."""
    checked = checked or {}
    for name, info in gguf_file.tensors.items():
        if info.type in BLOCK_SCALE_OFFSETS and info.offset in checked:
            relative = checked[info.offset]
        else:
            relative = first_non_finite(gguf_file.tensor_data(name), info.type)
        if relative is not None:
            raise InvalidModel(f"tensor {name!r} ({info.type.name}) holds a NaN or infinite value at byte offset "
                               f"{info.offset + relative}: a model whose weights are not finite cannot compute")


def first_non_finite(data: np.ndarray, tensor_type: T) -> int | None:
    """The byte offset, within a tensor's bytes, of its first non-finite float; None when all are finite
    (or the type holds no floats this module knows)."""
    if tensor_type in FLOAT_WIDTHS:
        width, mask = FLOAT_WIDTHS[tensor_type]
        return _first_masked(data, width, mask, offset=0, stride=width, count=data.size // width)
    offsets = BLOCK_SCALE_OFFSETS.get(tensor_type)
    if offsets is None:
        return None
    block_bytes = gguf.GGML_QUANT_SIZES[tensor_type][1]
    found = [_first_masked(data, 2, EXPONENT_MASK[2], offset=offset, stride=block_bytes,
                           count=data.size // block_bytes) for offset in offsets]
    return min((at for at in found if at is not None), default=None)


def _first_masked(data: np.ndarray, width: int, mask: int, *, offset: int, stride: int, count: int) -> int | None:
    found = _core.first_masked(data, width, mask, offset, stride, count)
    return None if found is None else offset + found * stride


def _first_masked_numpy(data: np.ndarray, width: int, mask: int, *, offset: int, stride: int, count: int) -> int | None:
    """The same scan in numpy: the oracle the core's scan is tested against."""
    if count == 0:
        return None
    bits = np.ndarray((count,), dtype=f"<u{width}", buffer=data, offset=offset, strides=(stride,))
    bad = np.flatnonzero((bits & mask) == mask)
    return None if bad.size == 0 else offset + int(bad[0]) * stride
