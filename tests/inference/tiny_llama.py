"""A tiny synthetic llama model written with gguf.GGUFWriter: random weights, real format.

Small enough that the numpy reference runs in milliseconds, shaped like
SmolLM2 in every way that matters (grouped-query attention, tied output,
quantized matrices whose rows are whole 32-value blocks).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import gguf
import numpy as np
from gguf import GGMLQuantizationType
from gguf.quants import quantize


@dataclass
class TinyLlamaSpec:
    n_vocab: int = 96
    n_embd: int = 64
    n_layer: int = 2
    n_head: int = 4
    n_head_kv: int = 2
    n_ff: int = 96
    n_ctx_train: int = 64
    rope_freq_base: float = 10000.0
    rms_eps: float = 1e-5
    matrix_type: GGMLQuantizationType = GGMLQuantizationType.Q8_0
    tied_output: bool = True
    seed: int = 0
    extra_tensors: dict[str, np.ndarray] = field(default_factory=dict)
    drop_tensors: tuple[str, ...] = ()
    architecture: str = "llama"

    @property
    def head_dim(self) -> int:
        return self.n_embd // self.n_head


def tiny_llama_tensors(spec: TinyLlamaSpec) -> dict[str, np.ndarray]:
    """Float32 weights by GGUF tensor name, numpy shapes (rows, cols)."""
    rng = np.random.default_rng(spec.seed)
    hd, q_width, kv_width = spec.head_dim, spec.n_embd, spec.n_head_kv * spec.head_dim

    def matrix(rows: int, cols: int) -> np.ndarray:
        return (rng.standard_normal((rows, cols)) / np.sqrt(cols)).astype(np.float32)

    def norm(n: int) -> np.ndarray:
        return (1.0 + 0.1 * rng.standard_normal(n)).astype(np.float32)

    tensors = {"token_embd.weight": rng.standard_normal((spec.n_vocab, spec.n_embd)).astype(np.float32)}
    for i in range(spec.n_layer):
        tensors |= {
            f"blk.{i}.attn_norm.weight": norm(spec.n_embd),
            f"blk.{i}.attn_q.weight": matrix(q_width, spec.n_embd),
            f"blk.{i}.attn_k.weight": matrix(kv_width, spec.n_embd),
            f"blk.{i}.attn_v.weight": matrix(kv_width, spec.n_embd),
            f"blk.{i}.attn_output.weight": matrix(spec.n_embd, q_width),
            f"blk.{i}.ffn_norm.weight": norm(spec.n_embd),
            f"blk.{i}.ffn_gate.weight": matrix(spec.n_ff, spec.n_embd),
            f"blk.{i}.ffn_up.weight": matrix(spec.n_ff, spec.n_embd),
            f"blk.{i}.ffn_down.weight": matrix(spec.n_embd, spec.n_ff),
        }
    tensors["output_norm.weight"] = norm(spec.n_embd)
    if not spec.tied_output:
        tensors["output.weight"] = matrix(spec.n_vocab, spec.n_embd)
    assert hd * spec.n_head == spec.n_embd
    return tensors


def write_tiny_llama(path: Path, spec: TinyLlamaSpec | None = None, tensors: dict[str, np.ndarray] | None = None) -> Path:
    """Write the model to `path`; matrices in spec.matrix_type, vectors in F32."""
    spec = spec or TinyLlamaSpec()
    tensors = dict(tensors if tensors is not None else tiny_llama_tensors(spec))
    tensors |= spec.extra_tensors
    for name in spec.drop_tensors:
        tensors.pop(name)
    writer = gguf.GGUFWriter(str(path), spec.architecture)
    writer.add_block_count(spec.n_layer)
    writer.add_context_length(spec.n_ctx_train)
    writer.add_embedding_length(spec.n_embd)
    writer.add_feed_forward_length(spec.n_ff)
    writer.add_head_count(spec.n_head)
    writer.add_head_count_kv(spec.n_head_kv)
    writer.add_rope_freq_base(spec.rope_freq_base)
    writer.add_rope_dimension_count(spec.head_dim)
    writer.add_layer_norm_rms_eps(spec.rms_eps)
    writer.add_vocab_size(spec.n_vocab)
    for name, values in tensors.items():
        if values.ndim == 2 and spec.matrix_type != GGMLQuantizationType.F32:
            writer.add_tensor(name, quantize(values, spec.matrix_type), raw_dtype=spec.matrix_type)
        else:
            writer.add_tensor(name, values)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path
