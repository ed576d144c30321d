"""The gemma3 forward pass in numpy (Gemma-3-270M), readable top to bottom.

Gemma 3 is the llama block (reference/architectures/llama.py) with these differences, each
as llama.cpp runs a GGUF file converted from Hugging Face:
  - the token embedding is multiplied by sqrt(n_embd);
  - q and k get a per-head RMSNorm (weights [hd], shared by the heads) before RoPE;
  - the attention output and the feed-forward output are each RMSNormed
    (post_attention_norm, post_ffw_norm) before they join the residual;
  - the feed-forward is GELU(tanh)-gated instead of SiLU-gated;
  - 5 of every 6 layers attend only the last `sliding_window` positions and
    turn RoPE with base 10000; every 6th layer attends everything with
    `rope.freq_base` (1e6);
  - RoPE is NEOX style (pairs i, i + hd/2); attention scale 1/sqrt(key_length)
    (Hugging Face's query_pre_attn_scalar is key_length for these models);
  - final logit soft-capping, cap * tanh(logits / cap), when the file sets
    `gemma3.final_logit_softcapping` (Gemma 3 files do not).
Hugging Face's RMSNorm multiplies by (1 + w); the GGUF converter already
stored w + 1, so the norms here multiply by the stored weight as llama does.

Shapes use the names of reference/architectures/llama.py.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np

from ggufsm.spec.errors import InvalidModel, UnsupportedModel

from .llama import (
    KvCache,
    LayerWeights,
    LlamaHparams,
    LlamaModel,
    LlamaWeights,
    RopeStyle,
    cached_attention,
    checked_dense,
    checked_linear,
    embedding_rows,
    expected_shapes,
    fused_hparams as llama_fused_hparams,
    load_shared_weights,
    refuse_unknown_tensors,
    rmsnorm,
    rope,
)

SWA_PERIOD = 6  # llama.cpp's set_swa_pattern(6) for gemma3: layers 5, 11, 17, ... attend globally
LOCAL_ROPE_FREQ_BASE = 10000.0  # HF rope_local_base_freq; not in the GGUF metadata


@dataclass(frozen=True)
class Gemma3Hparams(LlamaHparams):
    sliding_window: int = 0  # positions a sliding layer sees, its own included
    rope_freq_base_local: float = LOCAL_ROPE_FREQ_BASE
    attn_scale: float = 0.0
    final_logit_softcap: float = 0.0  # 0: none

    def layer_slides(self, layer: int) -> bool:
        return self.sliding_window > 0 and (layer + 1) % SWA_PERIOD != 0


def hparams_from_metadata(metadata: Mapping[str, Any], n_vocab: int) -> Gemma3Hparams:
    arch = metadata.get("general.architecture")
    if arch != "gemma3":
        raise UnsupportedModel(f"general.architecture is {arch!r}; the gemma3 forward runs 'gemma3'")

    def required(key: str) -> Any:
        if f"gemma3.{key}" not in metadata:
            raise InvalidModel(f"metadata key 'gemma3.{key}' is missing")
        return metadata[f"gemma3.{key}"]

    scaling = metadata.get("gemma3.rope.scaling.type", "none")
    if scaling != "none":
        raise UnsupportedModel(f"gemma3.rope.scaling.type is {scaling!r}; only unscaled RoPE is implemented")
    n_embd, n_head = int(required("embedding_length")), int(required("attention.head_count"))
    n_head_kv = int(metadata.get("gemma3.attention.head_count_kv", n_head))
    if n_head <= 0 or n_head_kv <= 0 or n_head % n_head_kv != 0:
        raise InvalidModel(f"gemma3.attention.head_count {n_head} is not a positive multiple of head_count_kv {n_head_kv}")
    head_dim = int(metadata.get("gemma3.attention.key_length", n_embd // n_head))
    value_dim = int(metadata.get("gemma3.attention.value_length", head_dim))
    if value_dim != head_dim:
        raise UnsupportedModel(f"gemma3.attention.value_length {value_dim} differs from key_length {head_dim}")
    n_rot = int(metadata.get("gemma3.rope.dimension_count", head_dim))
    if n_rot % 2 or not 0 < n_rot <= head_dim:
        raise InvalidModel(f"gemma3.rope.dimension_count {n_rot} must be even and in (0, head_dim {head_dim}]")
    return Gemma3Hparams(
        n_vocab=n_vocab, n_embd=n_embd, n_layer=int(required("block_count")), n_head=n_head, n_head_kv=n_head_kv,
        head_dim=head_dim, n_ff=int(required("feed_forward_length")), n_rot=n_rot,
        rope_freq_base=float(metadata.get("gemma3.rope.freq_base", 1_000_000.0)),
        rms_eps=float(required("attention.layer_norm_rms_epsilon")), n_ctx_train=int(required("context_length")),
        rope_style=RopeStyle.NEOX, sliding_window=int(metadata.get("gemma3.attention.sliding_window", 0)),
        attn_scale=1.0 / math.sqrt(head_dim),
        final_logit_softcap=float(metadata.get("gemma3.final_logit_softcapping", 0.0) or 0.0),
    )


def fused_hparams(hp: Gemma3Hparams) -> dict[str, Any]:
    return llama_fused_hparams(hp) | {
        "rope_freq_base_local": hp.rope_freq_base_local, "attn_scale": hp.attn_scale, "embd_scale": math.sqrt(hp.n_embd),
        "sliding_window": hp.sliding_window, "swa_period": SWA_PERIOD, "ffn": "geglu",
        "final_logit_softcap": hp.final_logit_softcap, "qk_norm": True, "post_norms": True,
    }


# ----------------------------------------------------------------------------
# Weights

@dataclass
class Gemma3LayerWeights(LayerWeights):
    q_norm: np.ndarray = None  # [hd]
    k_norm: np.ndarray = None  # [hd]
    post_attn_norm: np.ndarray = None  # [n_embd]
    post_ffn_norm: np.ndarray = None  # [n_embd]


LAYER_TENSORS = {
    "attn_norm": "attn_norm", "wq": "attn_q", "wk": "attn_k", "wv": "attn_v", "wo": "attn_output", "ffn_norm": "ffn_norm",
    "w_gate": "ffn_gate", "w_up": "ffn_up", "w_down": "ffn_down", "q_norm": "attn_q_norm", "k_norm": "attn_k_norm",
    "post_attn_norm": "post_attention_norm", "post_ffn_norm": "post_ffw_norm",
}
_KNOWN_TENSOR = re.compile(r"^(token_embd|output_norm|output|blk\.\d+\.(%s))\.weight$" % "|".join(LAYER_TENSORS.values()))


def load_gemma3(tensors, activations: str = "q8") -> tuple[Gemma3Hparams, LlamaWeights]:
    refuse_unknown_tensors(tensors, _KNOWN_TENSOR, "gemma3")
    hp = hparams_from_metadata(tensors.metadata, n_vocab=embedding_rows(tensors))
    weights = load_shared_weights(tensors, hp, activations)
    shapes = expected_shapes(hp) | {
        "attn_q_norm": (hp.head_dim,), "attn_k_norm": (hp.head_dim,), "post_attention_norm": (hp.n_embd,), "post_ffw_norm": (hp.n_embd,),
    }
    for i in range(hp.n_layer):
        weights.layers.append(Gemma3LayerWeights(**{
            field: (checked_dense(tensors, f"blk.{i}.{suffix}.weight", shapes[suffix]) if field.endswith("norm")
                    else checked_linear(tensors, f"blk.{i}.{suffix}.weight", shapes[suffix], activations == "q8"))
            for field, suffix in LAYER_TENSORS.items()
        }))
    return hp, weights


# ----------------------------------------------------------------------------
# The blocks

def gelu(x: np.ndarray) -> np.ndarray:
    """The tanh approximation (ggml's and Hugging Face's gelu_pytorch_tanh)."""
    return 0.5 * x * (1.0 + np.tanh(np.float32(math.sqrt(2.0 / math.pi)) * (x + np.float32(0.044715) * x * x * x)))


def attention(hp: Gemma3Hparams, layer: Gemma3LayerWeights, cache: KvCache, layer_index: int, x: np.ndarray,
              positions: np.ndarray) -> np.ndarray:
    """x: [n_tok, n_embd] (normed) -> [n_tok, n_embd], before post_attention_norm."""
    n_tok, slides = x.shape[0], hp.layer_slides(layer_index)
    q = rmsnorm(layer.wq(x).reshape(n_tok * hp.n_head, hp.head_dim), layer.q_norm, hp.rms_eps)  # [n_tok * n_head, hd]
    k = rmsnorm(layer.wk(x).reshape(n_tok * hp.n_head_kv, hp.head_dim), layer.k_norm, hp.rms_eps)  # [n_tok * n_head_kv, hd]
    v = layer.wv(x).reshape(n_tok, hp.n_head_kv, hp.head_dim)
    freq_base = hp.rope_freq_base_local if slides else hp.rope_freq_base
    q = rope(q.reshape(n_tok, hp.n_head, hp.head_dim), positions, hp.n_rot, freq_base, hp.rope_style)
    k = rope(k.reshape(n_tok, hp.n_head_kv, hp.head_dim), positions, hp.n_rot, freq_base, hp.rope_style)
    mixed = cached_attention(cache, layer_index, q, k, v, positions, hp.attn_scale, hp.sliding_window if slides else 0)
    return layer.wo(mixed.reshape(n_tok, hp.n_head * hp.head_dim))


def feed_forward(layer: Gemma3LayerWeights, x: np.ndarray) -> np.ndarray:
    """GELU-gated. x: [n_tok, n_embd] (normed) -> [n_tok, n_embd], before post_ffw_norm."""
    return layer.w_down(gelu(layer.w_gate(x)) * layer.w_up(x))


def forward(hp: Gemma3Hparams, weights: LlamaWeights, cache: KvCache, tokens: np.ndarray, start_pos: int,
            all_logits: bool) -> np.ndarray:
    """Tokens [n_tok] at positions start_pos.. -> logits [n_tok or 1, n_vocab] (see llama.forward)."""
    positions = start_pos + np.arange(len(tokens))  # [n_tok]
    x = weights.token_embd[tokens] * np.float32(math.sqrt(hp.n_embd))  # [n_tok, n_embd]
    for i, layer in enumerate(weights.layers):
        attended = attention(hp, layer, cache, i, rmsnorm(x, layer.attn_norm, hp.rms_eps), positions)
        x = x + rmsnorm(attended, layer.post_attn_norm, hp.rms_eps)
        fed = feed_forward(layer, rmsnorm(x, layer.ffn_norm, hp.rms_eps))
        x = x + rmsnorm(fed, layer.post_ffn_norm, hp.rms_eps)
    if not all_logits:
        x = x[-1:]
    logits = weights.output(rmsnorm(x, weights.output_norm, hp.rms_eps))  # [n_tok or 1, n_vocab]
    if hp.final_logit_softcap > 0:
        logits = np.float32(hp.final_logit_softcap) * np.tanh(logits / np.float32(hp.final_logit_softcap))
    return logits


class Gemma3Model(LlamaModel):
    forward = staticmethod(forward)

    @classmethod
    def from_tensors(cls, tensors, activations: str = "q8") -> "Gemma3Model":
        return cls(*load_gemma3(tensors, activations))

