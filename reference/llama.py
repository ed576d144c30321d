"""The llama forward pass in numpy, readable top to bottom.

This is the reference: the fused C++ forward (`ggufsm._core`, forward_llama)
is tested equal to it. Architecture `llama` as SmolLM2 uses it: token
embedding, RMSNorm, RoPE (normal style: rotate adjacent pairs), grouped-query
attention over a KV cache, SwiGLU feed-forward, output projection (tied to the
token embedding when the file has no `output.weight`).

Shapes are written beside every array. Names used in them:
  n_tok  tokens in this call        n_embd   model width
  n_head query heads                n_head_kv key/value heads
  hd     head_dim                   n_ff     feed-forward width
  n_ctx  KV cache length            n_vocab  vocabulary size

Weights are dequantized to float32 once at load and activations stay
float32, whereas llama.cpp quantizes activations to 8 bits before each
quantized matrix product and keeps its KV cache in f16: docs/fidelity.md
measures what that difference does to the logits and to greedy output.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum
from typing import Any, Mapping, Sequence

import numpy as np

from ggufsm.spec.errors import InvalidInput, InvalidModel, ModelNotLoaded, UnsupportedModel

from .weights import GgufTensors


class RopeStyle(Enum):
    NORMAL = "normal"  # rotate (x[2i], x[2i+1]): llama
    NEOX = "neox"  # rotate (x[i], x[i + n_rot/2]): gemma3, qwen, ...


# ----------------------------------------------------------------------------
# Hyperparameters

@dataclass(frozen=True)
class LlamaHparams:
    n_vocab: int
    n_embd: int
    n_layer: int
    n_head: int
    n_head_kv: int
    head_dim: int
    n_ff: int
    n_rot: int  # leading dims of each head that RoPE rotates
    rope_freq_base: float
    rms_eps: float
    n_ctx_train: int
    rope_style: RopeStyle = RopeStyle.NORMAL

    @property
    def n_group(self) -> int:
        """Query heads that share one key/value head."""
        return self.n_head // self.n_head_kv


def hparams_from_metadata(metadata: Mapping[str, Any], n_vocab: int) -> LlamaHparams:
    """Hyperparameters of a llama-architecture model from its GGUF metadata.

    `n_vocab` comes from the token embedding's shape: the metadata's
    `llama.vocab_size` is optional and the tensor is what the forward uses.
    """
    arch = metadata.get("general.architecture")
    if arch != "llama":
        raise UnsupportedModel(f"general.architecture is {arch!r}; the llama forward runs 'llama'")

    def required(key: str) -> Any:
        if f"llama.{key}" not in metadata:
            raise InvalidModel(f"metadata key 'llama.{key}' is missing")
        return metadata[f"llama.{key}"]

    scaling = metadata.get("llama.rope.scaling.type", "none")
    if scaling != "none":
        raise UnsupportedModel(f"llama.rope.scaling.type is {scaling!r}; only unscaled RoPE is implemented")
    n_embd = int(required("embedding_length"))
    n_head = int(required("attention.head_count"))
    n_head_kv = int(metadata.get("llama.attention.head_count_kv", n_head))
    if n_head <= 0 or n_head_kv <= 0 or n_head % n_head_kv != 0:
        raise InvalidModel(f"llama.attention.head_count {n_head} is not a positive multiple of head_count_kv {n_head_kv}")
    head_dim = int(metadata.get("llama.attention.key_length", n_embd // n_head))
    n_rot = int(metadata.get("llama.rope.dimension_count", head_dim))
    if n_rot % 2 or not 0 < n_rot <= head_dim:
        raise InvalidModel(f"llama.rope.dimension_count {n_rot} must be even and in (0, head_dim {head_dim}]")
    return LlamaHparams(
        n_vocab=n_vocab,
        n_embd=n_embd,
        n_layer=int(required("block_count")),
        n_head=n_head,
        n_head_kv=n_head_kv,
        head_dim=head_dim,
        n_ff=int(required("feed_forward_length")),
        n_rot=n_rot,
        rope_freq_base=float(metadata.get("llama.rope.freq_base", 10000.0)),
        rms_eps=float(required("attention.layer_norm_rms_epsilon")),
        n_ctx_train=int(required("context_length")),
    )


# ----------------------------------------------------------------------------
# Weights

@dataclass
class LayerWeights:
    attn_norm: np.ndarray  # [n_embd]
    wq: np.ndarray  # [n_head * hd, n_embd]
    wk: np.ndarray  # [n_head_kv * hd, n_embd]
    wv: np.ndarray  # [n_head_kv * hd, n_embd]
    wo: np.ndarray  # [n_embd, n_head * hd]
    ffn_norm: np.ndarray  # [n_embd]
    w_gate: np.ndarray  # [n_ff, n_embd]
    w_up: np.ndarray  # [n_ff, n_embd]
    w_down: np.ndarray  # [n_embd, n_ff]


@dataclass
class LlamaWeights:
    token_embd: np.ndarray  # [n_vocab, n_embd]
    layers: list[LayerWeights]  # [n_layer]
    output_norm: np.ndarray  # [n_embd]
    output: np.ndarray  # [n_vocab, n_embd]; the same array as token_embd when tied


LAYER_TENSORS = {
    "attn_norm": "attn_norm", "wq": "attn_q", "wk": "attn_k", "wv": "attn_v", "wo": "attn_output",
    "ffn_norm": "ffn_norm", "w_gate": "ffn_gate", "w_up": "ffn_up", "w_down": "ffn_down",
}
_KNOWN_TENSOR = re.compile(r"^(token_embd|output_norm|output|blk\.\d+\.(%s))\.weight$" % "|".join(LAYER_TENSORS.values()))


def expected_shapes(hp: LlamaHparams) -> dict[str, tuple[int, ...]]:
    """Numpy shape of each per-layer tensor, by its GGUF name suffix."""
    q_width, kv_width = hp.n_head * hp.head_dim, hp.n_head_kv * hp.head_dim
    return {
        "attn_norm": (hp.n_embd,), "attn_q": (q_width, hp.n_embd), "attn_k": (kv_width, hp.n_embd),
        "attn_v": (kv_width, hp.n_embd), "attn_output": (hp.n_embd, q_width), "ffn_norm": (hp.n_embd,),
        "ffn_gate": (hp.n_ff, hp.n_embd), "ffn_up": (hp.n_ff, hp.n_embd), "ffn_down": (hp.n_embd, hp.n_ff),
    }


def _checked(tensors: GgufTensors, name: str, shape: tuple[int, ...]) -> np.ndarray:
    if not tensors.has(name):
        raise InvalidModel(f"tensor {name!r} is missing from the model")
    actual = tensors.tensors[name].shape
    if actual != shape:
        raise InvalidModel(f"tensor {name!r} has shape {actual}, expected {shape}")
    return tensors.dense(name)


def load_llama(tensors: GgufTensors) -> tuple[LlamaHparams, LlamaWeights]:
    """Hyperparameters and float32 weights of a llama model; refuses tensors it would ignore."""
    unknown = sorted(name for name in tensors.tensors if not _KNOWN_TENSOR.match(name))
    if unknown:
        raise UnsupportedModel(f"the llama forward does not use tensor(s) {unknown[:3]}; refusing rather than ignoring them")
    if not tensors.has("token_embd.weight") or len(tensors.tensors["token_embd.weight"].shape) != 2:
        raise InvalidModel("tensor 'token_embd.weight' is missing or not a matrix")
    hp = hparams_from_metadata(tensors.metadata, n_vocab=tensors.tensors["token_embd.weight"].shape[0])
    token_embd = _checked(tensors, "token_embd.weight", (hp.n_vocab, hp.n_embd))
    shapes = expected_shapes(hp)
    layers = [
        LayerWeights(**{field: _checked(tensors, f"blk.{i}.{suffix}.weight", shapes[suffix]) for field, suffix in LAYER_TENSORS.items()})
        for i in range(hp.n_layer)
    ]
    tied = not tensors.has("output.weight")
    output = token_embd if tied else _checked(tensors, "output.weight", (hp.n_vocab, hp.n_embd))
    weights = LlamaWeights(token_embd, layers, _checked(tensors, "output_norm.weight", (hp.n_embd,)), output)
    return hp, weights


# ----------------------------------------------------------------------------
# The blocks

def rmsnorm(x: np.ndarray, weight: np.ndarray, eps: float) -> np.ndarray:
    """x: [n_tok, n] -> [n_tok, n], each row scaled to unit root-mean-square, times weight [n]."""
    mean_square = np.mean(x.astype(np.float64) ** 2, axis=-1, keepdims=True)  # [n_tok, 1]
    return (x / np.sqrt(mean_square + eps)).astype(np.float32) * weight


def rope(x: np.ndarray, positions: np.ndarray, n_rot: int, freq_base: float, style: RopeStyle) -> np.ndarray:
    """Rotary position embedding. x: [n_tok, n_heads, hd], positions: [n_tok] -> same shape.

    Pair i of the first n_rot dims turns by angle position * freq_base^(-2i/n_rot).
    """
    half = n_rot // 2
    inv_freq = freq_base ** (-np.arange(half, dtype=np.float64) * 2.0 / n_rot)  # [half]
    angle = positions.astype(np.float64)[:, None] * inv_freq[None, :]  # [n_tok, half]
    cos = np.cos(angle)[:, None, :].astype(np.float32)  # [n_tok, 1, half]
    sin = np.sin(angle)[:, None, :].astype(np.float32)
    out = x.copy()
    if style is RopeStyle.NORMAL:
        first, second = x[..., 0:n_rot:2], x[..., 1:n_rot:2]  # [n_tok, n_heads, half] each
        out[..., 0:n_rot:2] = first * cos - second * sin
        out[..., 1:n_rot:2] = first * sin + second * cos
    else:
        first, second = x[..., :half], x[..., half:n_rot]
        out[..., :half] = first * cos - second * sin
        out[..., half:n_rot] = first * sin + second * cos
    return out


def softmax(scores: np.ndarray) -> np.ndarray:
    """Along the last axis; -inf entries get probability 0."""
    exp = np.exp(scores - scores.max(axis=-1, keepdims=True))
    return exp / exp.sum(axis=-1, keepdims=True)


def silu(x: np.ndarray) -> np.ndarray:
    return x / (1.0 + np.exp(-x))


@dataclass
class KvCache:
    """Keys and values of every position seen so far, per layer and KV head."""

    k: np.ndarray  # [n_layer, n_head_kv, n_ctx, hd]
    v: np.ndarray  # [n_layer, n_head_kv, n_ctx, hd]

    @classmethod
    def empty(cls, hp: LlamaHparams, n_ctx: int) -> "KvCache":
        shape = (hp.n_layer, hp.n_head_kv, n_ctx, hp.head_dim)
        return cls(np.zeros(shape, np.float32), np.zeros(shape, np.float32))

    @property
    def n_ctx(self) -> int:
        return self.k.shape[2]


def attention(hp: LlamaHparams, layer: LayerWeights, cache: KvCache, layer_index: int, x: np.ndarray, positions: np.ndarray) -> np.ndarray:
    """Causal grouped-query self-attention. x: [n_tok, n_embd] (normed), positions: [n_tok] -> [n_tok, n_embd].

    Writes this call's keys and values into the cache at `positions`, then each
    token attends to every cached position up to and including its own.
    """
    n_tok = x.shape[0]
    q = (x @ layer.wq.T).reshape(n_tok, hp.n_head, hp.head_dim)  # [n_tok, n_head, hd]
    k = (x @ layer.wk.T).reshape(n_tok, hp.n_head_kv, hp.head_dim)  # [n_tok, n_head_kv, hd]
    v = (x @ layer.wv.T).reshape(n_tok, hp.n_head_kv, hp.head_dim)
    q = rope(q, positions, hp.n_rot, hp.rope_freq_base, hp.rope_style)
    k = rope(k, positions, hp.n_rot, hp.rope_freq_base, hp.rope_style)
    cache.k[layer_index][:, positions, :] = k.transpose(1, 0, 2)  # [n_head_kv, n_tok, hd]
    cache.v[layer_index][:, positions, :] = v.transpose(1, 0, 2)

    n_seen = int(positions[-1]) + 1
    keys = np.repeat(cache.k[layer_index][:, :n_seen], hp.n_group, axis=0)  # [n_head, n_seen, hd]
    values = np.repeat(cache.v[layer_index][:, :n_seen], hp.n_group, axis=0)  # [n_head, n_seen, hd]
    scores = np.einsum("thd,hsd->hts", q, keys) / np.sqrt(hp.head_dim)  # [n_head, n_tok, n_seen]
    future = np.arange(n_seen)[None, :] > positions[:, None]  # [n_tok, n_seen]
    scores = np.where(future[None], -np.inf, scores)
    mixed = np.einsum("hts,hsd->thd", softmax(scores), values)  # [n_tok, n_head, hd]
    return mixed.reshape(n_tok, hp.n_head * hp.head_dim) @ layer.wo.T  # [n_tok, n_embd]


def feed_forward(layer: LayerWeights, x: np.ndarray) -> np.ndarray:
    """SwiGLU. x: [n_tok, n_embd] (normed) -> [n_tok, n_embd]."""
    gate = x @ layer.w_gate.T  # [n_tok, n_ff]
    up = x @ layer.w_up.T  # [n_tok, n_ff]
    return (silu(gate) * up) @ layer.w_down.T  # [n_tok, n_embd]


# ----------------------------------------------------------------------------
# The forward pass

def forward(hp: LlamaHparams, weights: LlamaWeights, cache: KvCache, tokens: np.ndarray, start_pos: int, all_logits: bool) -> np.ndarray:
    """Run tokens [n_tok] at positions start_pos.. through the model.

    Returns logits [n_tok, n_vocab] when all_logits, else [1, n_vocab] for the last position.
    """
    positions = start_pos + np.arange(len(tokens))  # [n_tok]
    x = weights.token_embd[tokens]  # [n_tok, n_embd]
    for layer_index, layer in enumerate(weights.layers):
        x = x + attention(hp, layer, cache, layer_index, rmsnorm(x, layer.attn_norm, hp.rms_eps), positions)
        x = x + feed_forward(layer, rmsnorm(x, layer.ffn_norm, hp.rms_eps))
    if not all_logits:
        x = x[-1:]
    return rmsnorm(x, weights.output_norm, hp.rms_eps) @ weights.output.T  # [n_tok or 1, n_vocab]


class LlamaModel:
    """Hyperparameters and float32 weights; shared by any number of sessions."""

    def __init__(self, hp: LlamaHparams, weights: LlamaWeights):
        self.hp = hp
        self.weights = weights

    @property
    def n_ctx_train(self) -> int:
        return self.hp.n_ctx_train

    def close(self) -> None:
        """Drop the weights (the sessions made from this model must not be used after)."""
        self.weights = None

    @classmethod
    def from_tensors(cls, tensors: GgufTensors) -> "LlamaModel":
        return cls(*load_llama(tensors))

    def new_session(self, n_ctx: int) -> "LlamaSession":
        return LlamaSession(self, n_ctx)


class LlamaSession:
    """One sequence: a KV cache of n_ctx positions over a shared model."""

    def __init__(self, model: LlamaModel, n_ctx: int):
        if n_ctx <= 0:
            raise InvalidInput(f"n_ctx must be positive, got {n_ctx}")
        self.model = model
        self.n_ctx = n_ctx
        self.cache: KvCache | None = KvCache.empty(model.hp, n_ctx)

    @property
    def nbytes(self) -> dict[str, int]:
        """Memory this session holds, by buffer."""
        return {"kv_cache": self.cache.k.nbytes + self.cache.v.nbytes if self.cache else 0}

    def close(self) -> None:
        self.cache = None

    def prefill(self, tokens: Sequence[int], start_pos: int = 0, all_logits: bool = False) -> np.ndarray:
        """All tokens in one pass. Returns logits [n_vocab] of the last position ([n_tok, n_vocab] if all_logits)."""
        if self.cache is None or self.model.weights is None:
            raise ModelNotLoaded("this session (or its model) has been closed")
        token_array = self._checked_tokens(tokens, start_pos)
        logits = forward(self.model.hp, self.model.weights, self.cache, token_array, start_pos, all_logits)
        return logits if all_logits else logits[0]

    def decode(self, token: int, pos: int) -> np.ndarray:
        """One token at position pos, attending to the cache's positions 0..pos. Returns logits [n_vocab]."""
        return self.prefill([token], pos)

    def _checked_tokens(self, tokens: Sequence[int], start_pos: int) -> np.ndarray:
        token_array = np.asarray(tokens, dtype=np.int64).reshape(-1)  # [n_tok]
        if token_array.size == 0:
            raise InvalidInput("no tokens to evaluate")
        n_vocab = self.model.hp.n_vocab
        bad = np.flatnonzero((token_array < 0) | (token_array >= n_vocab))
        if bad.size:
            raise InvalidInput(f"token id {int(token_array[bad[0]])} at index {int(bad[0])} is outside the vocabulary [0, {n_vocab})")
        if start_pos < 0 or start_pos + token_array.size > self.n_ctx:
            raise InvalidInput(f"positions {start_pos}..{start_pos + token_array.size - 1} do not fit the context of {self.n_ctx}")
        return token_array
