"""The gemma3 forward pass in numpy (Gemma-3-270M), readable top to bottom.

Gemma 3 is the llama block (reference/architectures/llama.py) with these differences, each
as llama.cpp runs a GGUF file converted from Hugging Face, and each declared
once for the C++ core (cpp/gguf/architectures.cpp), whose validated
hyperparameters this oracle reads:
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
from dataclasses import dataclass

import numpy as np

from .llama import (
    KvCache,
    LayerWeights,
    LlamaHparams,
    LlamaModel,
    LlamaWeights,
    cached_attention,
    layer_weights,
    load_shared_weights,
    require_switches,
    rmsnorm,
    rope,
)


@dataclass(frozen=True)
class Gemma3Hparams(LlamaHparams):
    sliding_window: int = 0  # positions a sliding layer sees, its own included; 0: none
    swa_period: int = 6  # layers 5, 11, 17, ... (every swa_period-th) attend globally (llama.cpp's set_swa_pattern(6))
    rope_freq_base_local: float = 10000.0  # the sliding layers' RoPE base (HF rope_local_base_freq; not in the files)
    embd_scale: float = 1.0  # sqrt(n_embd)
    final_logit_softcap: float = 0.0  # 0: none

    def layer_slides(self, layer: int) -> bool:
        return self.sliding_window > 0 and (layer + 1) % self.swa_period != 0


# The switches this file's forward computes (cpp/gguf/architectures.cpp declares them for `gemma3`).
GEMMA3_SWITCHES = {"rope_style": "neox", "ffn": "geglu", "qk_norm": True, "post_norms": True}


# ----------------------------------------------------------------------------
# Weights

@dataclass
class Gemma3LayerWeights(LayerWeights):
    q_norm: np.ndarray = None  # [hd]
    k_norm: np.ndarray = None  # [hd]
    post_attn_norm: np.ndarray = None  # [n_embd]
    post_ffn_norm: np.ndarray = None  # [n_embd]


# Field -> the GGUF name of its tensor in block i ("blk.{i}.<name>.weight").
LAYER_TENSORS = {
    "attn_norm": "attn_norm", "wq": "attn_q", "wk": "attn_k", "wv": "attn_v", "wo": "attn_output", "ffn_norm": "ffn_norm",
    "w_gate": "ffn_gate", "w_up": "ffn_up", "w_down": "ffn_down", "q_norm": "attn_q_norm", "k_norm": "attn_k_norm",
    "post_attn_norm": "post_attention_norm", "post_ffn_norm": "post_ffw_norm",
}


def load_gemma3(tensors, activations: str = "q8") -> tuple[Gemma3Hparams, LlamaWeights]:
    require_switches(tensors.hyperparameters, "gemma3", **GEMMA3_SWITCHES)
    hp = Gemma3Hparams.from_core(tensors.hyperparameters)
    weights = load_shared_weights(tensors, hp, activations)
    for i in range(hp.n_layer):
        weights.layers.append(Gemma3LayerWeights(**layer_weights(tensors, i, LAYER_TENSORS, activations)))
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
    x = weights.token_embd[tokens] * np.float32(hp.embd_scale)  # [n_tok, n_embd], embd_scale = sqrt(n_embd)
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
    def from_tensors(cls, tensors, activations: str = "q8") -> Gemma3Model:
        return cls(*load_gemma3(tensors, activations))

