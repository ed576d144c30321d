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


def add_tiny_vocabulary(writer: gguf.GGUFWriter, n_vocab: int) -> None:
    """A SentencePiece-kind vocabulary of n_vocab placeholder pieces: enough for the C++ core's validation
    (a known tokenizer kind whose vocabulary matches the embedding); the forward tests feed token ids."""
    writer.add_tokenizer_model("llama")
    writer.add_token_list([f"<t{i}>" for i in range(n_vocab)])
    writer.add_token_scores([0.0] * n_vocab)
    writer.add_token_types([gguf.TokenType.NORMAL] * n_vocab)


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
    add_tiny_vocabulary(writer, spec.n_vocab)
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


# ----------------------------------------------------------------------------
# gemma3

@dataclass
class TinyGemma3Spec:
    """Seven layers so that layer 5 attends globally and the rest through a window of 4 positions;
    widths of 256 so that k-quant rows are whole super-blocks; head_dim != n_embd / n_head as in Gemma 3."""

    n_vocab: int = 96
    n_embd: int = 256
    n_layer: int = 7
    n_head: int = 4
    n_head_kv: int = 1
    head_dim: int = 64
    n_ff: int = 512
    n_ctx_train: int = 64
    sliding_window: int = 4
    rope_freq_base: float = 1_000_000.0
    rms_eps: float = 1e-6
    final_logit_softcap: float = 0.0
    matrix_type: GGMLQuantizationType = GGMLQuantizationType.Q8_0
    type_overrides: dict[str, GGMLQuantizationType] = field(default_factory=dict)  # name suffix -> type
    seed: int = 0


# Gemma-3-270M Q4_K_M's mix of types, by tensor name suffix.
GEMMA3_Q4_K_M_TYPES = {
    "attn_q.weight": GGMLQuantizationType.Q5_0, "attn_k.weight": GGMLQuantizationType.Q5_0,
    "attn_v.weight": GGMLQuantizationType.Q8_0, "attn_output.weight": GGMLQuantizationType.Q4_K,
    "ffn_gate.weight": GGMLQuantizationType.Q5_0, "ffn_up.weight": GGMLQuantizationType.Q5_0,
    "ffn_down.weight": GGMLQuantizationType.Q6_K, "token_embd.weight": GGMLQuantizationType.Q8_0,
}


def random_kquant(rows: int, cols: int, qtype: GGMLQuantizationType, rng: np.random.Generator) -> np.ndarray:
    """Random k-quant blocks [rows, bytes per row] (gguf cannot quantize these), dequantizing to values of about
    1/sqrt(cols): random codes and sub-block scales, super-block scales set to fit."""
    block_bytes = {GGMLQuantizationType.Q4_K: 144, GGMLQuantizationType.Q6_K: 210}[qtype]
    blocks = rng.integers(0, 256, size=(rows, cols // 256, block_bytes), dtype=np.uint8)
    scale = np.float16(1.0 / np.sqrt(cols) / (63 * 8 if qtype == GGMLQuantizationType.Q4_K else 64 * 16))
    scale_bytes = np.frombuffer(scale.tobytes(), np.uint8)
    if qtype == GGMLQuantizationType.Q4_K:  # d, dmin are the first two fp16
        blocks[..., 0:2] = scale_bytes
        blocks[..., 2:4] = scale_bytes
    else:  # d is the last fp16
        blocks[..., 208:210] = scale_bytes
    return blocks.reshape(rows, -1)


def tiny_gemma3_tensors(spec: TinyGemma3Spec) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(spec.seed)
    q_width, kv_width = spec.n_head * spec.head_dim, spec.n_head_kv * spec.head_dim

    def matrix(rows: int, cols: int) -> np.ndarray:
        return (rng.standard_normal((rows, cols)) / np.sqrt(cols)).astype(np.float32)

    def norm(n: int) -> np.ndarray:  # stored as 1 + w, as the GGUF converter writes Gemma's norms
        return (1.0 + 0.1 * rng.standard_normal(n)).astype(np.float32)

    tensors = {"token_embd.weight": (0.1 * rng.standard_normal((spec.n_vocab, spec.n_embd))).astype(np.float32)}
    for i in range(spec.n_layer):
        tensors |= {
            f"blk.{i}.attn_norm.weight": norm(spec.n_embd),
            f"blk.{i}.attn_q.weight": matrix(q_width, spec.n_embd),
            f"blk.{i}.attn_k.weight": matrix(kv_width, spec.n_embd),
            f"blk.{i}.attn_v.weight": matrix(kv_width, spec.n_embd),
            f"blk.{i}.attn_q_norm.weight": norm(spec.head_dim),
            f"blk.{i}.attn_k_norm.weight": norm(spec.head_dim),
            f"blk.{i}.attn_output.weight": matrix(spec.n_embd, q_width),
            f"blk.{i}.post_attention_norm.weight": norm(spec.n_embd),
            f"blk.{i}.ffn_norm.weight": norm(spec.n_embd),
            f"blk.{i}.ffn_gate.weight": matrix(spec.n_ff, spec.n_embd),
            f"blk.{i}.ffn_up.weight": matrix(spec.n_ff, spec.n_embd),
            f"blk.{i}.ffn_down.weight": matrix(spec.n_embd, spec.n_ff),
            f"blk.{i}.post_ffw_norm.weight": norm(spec.n_embd),
        }
    tensors["output_norm.weight"] = norm(spec.n_embd)
    return tensors


def write_tiny_gemma3(path: Path, spec: TinyGemma3Spec | None = None, tensors: dict[str, np.ndarray] | None = None) -> Path:
    spec = spec or TinyGemma3Spec()
    tensors = tensors if tensors is not None else tiny_gemma3_tensors(spec)
    rng = np.random.default_rng(spec.seed + 1)
    writer = gguf.GGUFWriter(str(path), "gemma3")
    writer.add_block_count(spec.n_layer)
    writer.add_context_length(spec.n_ctx_train)
    writer.add_embedding_length(spec.n_embd)
    writer.add_feed_forward_length(spec.n_ff)
    writer.add_head_count(spec.n_head)
    writer.add_head_count_kv(spec.n_head_kv)
    writer.add_key_length(spec.head_dim)
    writer.add_value_length(spec.head_dim)
    writer.add_rope_freq_base(spec.rope_freq_base)
    writer.add_layer_norm_rms_eps(spec.rms_eps)
    writer.add_sliding_window(spec.sliding_window)
    if spec.final_logit_softcap:
        writer.add_final_logit_softcapping(spec.final_logit_softcap)
    add_tiny_vocabulary(writer, spec.n_vocab)
    for name, values in tensors.items():
        qtype = next((t for suffix, t in spec.type_overrides.items() if name.endswith(suffix)), spec.matrix_type)
        if values.ndim != 2 or qtype == GGMLQuantizationType.F32:
            writer.add_tensor(name, values)
        elif qtype in (GGMLQuantizationType.Q4_K, GGMLQuantizationType.Q6_K):
            writer.add_tensor(name, random_kquant(*values.shape, qtype, rng), raw_dtype=qtype)
        else:
            writer.add_tensor(name, quantize(values, qtype), raw_dtype=qtype)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path
