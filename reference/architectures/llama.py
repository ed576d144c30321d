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

Weights are dequantized to float32 once at load. Before each product with a
quantized matrix the activations are rounded to 8 bits per block, as the fused
kernels (cpp/include/ggufsm/matmul.h) and llama.cpp do: SmolLM2's logits move
by tenths under that rounding, so a float32 reference could not be tested
equal to the fused forward. `activations="f32"` turns the rounding off.
docs/fidelity.md measures both against llama.cpp.

The KV cache holds IEEE halves, as the fused forward's and llama.cpp's do: keys
and values are rounded to float16 (nearest even) when stored, the query is
rounded the same way before it meets them (llama.cpp converts it to the cache's
type), and attention reads them back exactly, so the fused forward is tested
equal to this one with the same rounding rather than against a float32 cache
it does not keep.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum
from typing import Any, Mapping, Sequence

import numpy as np
from gguf import GGML_QUANT_SIZES, GGMLQuantizationType

from ggufsm.spec.errors import ContextOverflow, InvalidInput, InvalidModel, ModelNotLoaded, UnsupportedModel

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


def fused_hparams(hp: LlamaHparams) -> dict[str, Any]:
    """The hyperparameters as the fused forward (`ggufsm._core.LlamaModel`) takes them."""
    return {
        "n_vocab": hp.n_vocab, "n_embd": hp.n_embd, "n_layer": hp.n_layer, "n_head": hp.n_head, "n_head_kv": hp.n_head_kv,
        "head_dim": hp.head_dim, "n_ff": hp.n_ff, "n_rot": hp.n_rot, "rms_eps": hp.rms_eps,
        "rope_freq_base": hp.rope_freq_base, "rope_neox": hp.rope_style is RopeStyle.NEOX, "ffn": "swiglu",
    }


# ----------------------------------------------------------------------------
# Activation rounding: the fused kernels' numeric contract

def activation_block(qtype: GGMLQuantizationType) -> int:
    """Values per 8-bit activation block for a product with a `qtype` matrix; 0 for float matrices."""
    if qtype in (GGMLQuantizationType.F32, GGMLQuantizationType.F16, GGMLQuantizationType.BF16):
        return 0
    return GGML_QUANT_SIZES[qtype][0]  # 32 for Q4_0..Q8_0, 256 for the k-quants


def round_activations(x: np.ndarray, block: int) -> np.ndarray:
    """x [n_tok, cols] as 8-bit codes times a float32 scale per block of `block` values, back in float32.

    The kernels' rule, bit for bit: d = amax / 127, q = round-half-even(x * (127 / amax)).
    """
    if block == 0:
        return x
    blocks = x.reshape(x.shape[0], -1, block)  # [n_tok, cols / block, block]
    amax = np.abs(blocks).max(axis=-1, keepdims=True)  # [n_tok, cols / block, 1]
    with np.errstate(divide="ignore"):
        inverse = np.where(amax > 0, np.float32(127) / amax, np.float32(0))
    codes = np.rint(blocks * inverse)
    return (codes * (amax / np.float32(127))).reshape(x.shape)


@dataclass
class Linear:
    """A matrix dequantized to float32, and the activation rounding its products use."""

    weight: np.ndarray  # [rows, cols]
    act_block: int  # see activation_block; 0: float32 activations

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """x [n_tok, cols] -> [n_tok, rows]."""
        return round_activations(x, self.act_block) @ self.weight.T


# ----------------------------------------------------------------------------
# Weights

@dataclass
class LayerWeights:
    attn_norm: np.ndarray  # [n_embd]
    wq: Linear  # [n_head * hd, n_embd]
    wk: Linear  # [n_head_kv * hd, n_embd]
    wv: Linear  # [n_head_kv * hd, n_embd]
    wo: Linear  # [n_embd, n_head * hd]
    ffn_norm: np.ndarray  # [n_embd]
    w_gate: Linear  # [n_ff, n_embd]
    w_up: Linear  # [n_ff, n_embd]
    w_down: Linear  # [n_embd, n_ff]


@dataclass
class LlamaWeights:
    token_embd: np.ndarray  # [n_vocab, n_embd]
    layers: list[LayerWeights]  # [n_layer]
    output_norm: np.ndarray  # [n_embd]
    output: Linear  # [n_vocab, n_embd]; its weight is the token_embd array when tied


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


def checked_dense(tensors: GgufTensors, name: str, shape: tuple[int, ...]) -> np.ndarray:
    """Tensor `name` in float32, after checking it is there with `shape`."""
    if not tensors.has(name):
        raise InvalidModel(f"tensor {name!r} is missing from the model")
    actual = tensors.tensors[name].shape
    if actual != shape:
        raise InvalidModel(f"tensor {name!r} has shape {actual}, expected {shape}")
    return tensors.dense(name)


def checked_linear(tensors: GgufTensors, name: str, shape: tuple[int, int], round_activations: bool) -> Linear:
    block = activation_block(tensors.tensors[name].qtype) if tensors.has(name) and round_activations else 0
    return Linear(checked_dense(tensors, name, shape), block)


def refuse_unknown_tensors(tensors: GgufTensors, known: re.Pattern, architecture: str) -> None:
    unknown = sorted(name for name in tensors.tensors if not known.match(name))
    if unknown:
        raise UnsupportedModel(f"the {architecture} forward does not use tensor(s) {unknown[:3]}; refusing rather than ignoring them")


def embedding_rows(tensors: GgufTensors) -> int:
    """n_vocab, from the token embedding's shape (the metadata's vocab_size is optional)."""
    if not tensors.has("token_embd.weight") or len(tensors.tensors["token_embd.weight"].shape) != 2:
        raise InvalidModel("tensor 'token_embd.weight' is missing or not a matrix")
    return tensors.tensors["token_embd.weight"].shape[0]


def load_llama(tensors: GgufTensors, activations: str = "q8") -> tuple[LlamaHparams, LlamaWeights]:
    """Hyperparameters and float32 weights of a llama model; refuses tensors it would ignore.

    activations: "q8" rounds activations as the fused kernels do, "f32" keeps them float32.
    """
    refuse_unknown_tensors(tensors, _KNOWN_TENSOR, "llama")
    hp = hparams_from_metadata(tensors.metadata, n_vocab=embedding_rows(tensors))
    weights = load_shared_weights(tensors, hp, activations)
    shapes = expected_shapes(hp)
    for i in range(hp.n_layer):
        weights.layers.append(LayerWeights(**{
            field: (checked_dense(tensors, f"blk.{i}.{suffix}.weight", shapes[suffix]) if field.endswith("norm")
                    else checked_linear(tensors, f"blk.{i}.{suffix}.weight", shapes[suffix], activations == "q8"))
            for field, suffix in LAYER_TENSORS.items()
        }))
    return hp, weights


def load_shared_weights(tensors: GgufTensors, hp: LlamaHparams, activations: str) -> LlamaWeights:
    """Embedding, final norm and output projection; `layers` left empty for the architecture to fill."""
    if activations not in ("q8", "f32"):
        raise InvalidInput(f"activations is {activations!r}; one of 'q8', 'f32'")
    token_embd = checked_dense(tensors, "token_embd.weight", (hp.n_vocab, hp.n_embd))
    if tensors.has("output.weight"):
        output = checked_linear(tensors, "output.weight", (hp.n_vocab, hp.n_embd), activations == "q8")
    else:
        block = activation_block(tensors.tensors["token_embd.weight"].qtype) if activations == "q8" else 0
        output = Linear(token_embd, block)
    return LlamaWeights(token_embd, [], checked_dense(tensors, "output_norm.weight", (hp.n_embd,)), output)


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
    """Keys and values of every position seen so far, per layer and KV head, as float16."""

    k: np.ndarray  # [n_layer, n_head_kv, n_ctx, hd] float16
    v: np.ndarray  # [n_layer, n_head_kv, n_ctx, hd] float16

    @classmethod
    def empty(cls, hp: LlamaHparams, n_ctx: int) -> "KvCache":
        shape = (hp.n_layer, hp.n_head_kv, n_ctx, hp.head_dim)
        return cls(np.zeros(shape, np.float16), np.zeros(shape, np.float16))

    @property
    def n_ctx(self) -> int:
        return self.k.shape[2]


def attention(hp: LlamaHparams, layer: LayerWeights, cache: KvCache, layer_index: int, x: np.ndarray, positions: np.ndarray) -> np.ndarray:
    """Causal grouped-query self-attention. x: [n_tok, n_embd] (normed), positions: [n_tok] -> [n_tok, n_embd].

    Writes this call's keys and values into the cache at `positions`, then each
    token attends to every cached position up to and including its own.
    """
    n_tok = x.shape[0]
    q = layer.wq(x).reshape(n_tok, hp.n_head, hp.head_dim)  # [n_tok, n_head, hd]
    k = layer.wk(x).reshape(n_tok, hp.n_head_kv, hp.head_dim)  # [n_tok, n_head_kv, hd]
    v = layer.wv(x).reshape(n_tok, hp.n_head_kv, hp.head_dim)
    q = rope(q, positions, hp.n_rot, hp.rope_freq_base, hp.rope_style)
    k = rope(k, positions, hp.n_rot, hp.rope_freq_base, hp.rope_style)
    mixed = cached_attention(cache, layer_index, q, k, v, positions, 1.0 / np.sqrt(hp.head_dim), window=0)
    return layer.wo(mixed.reshape(n_tok, hp.n_head * hp.head_dim))  # [n_tok, n_embd]


def cached_attention(cache: KvCache, layer_index: int, q: np.ndarray, k: np.ndarray, v: np.ndarray, positions: np.ndarray,
                     scale: float, window: int) -> np.ndarray:
    """Stores k, v [n_tok, n_head_kv, hd] at `positions`; q [n_tok, n_head, hd] attends -> [n_tok, n_head, hd].

    Token t sees cached positions p <= positions[t], and only those with
    positions[t] - p < window when window > 0 (a sliding-window layer).
    """
    cache.k[layer_index][:, positions, :] = k.transpose(1, 0, 2)  # [n_head_kv, n_tok, hd], rounded to float16
    cache.v[layer_index][:, positions, :] = v.transpose(1, 0, 2)
    # The query meets the half cache as a half, as in llama.cpp (and the fused attention).
    q = q.astype(np.float16).astype(np.float32)
    n_seen, n_group = int(positions[-1]) + 1, q.shape[1] // k.shape[1]
    keys = np.repeat(cache.k[layer_index][:, :n_seen].astype(np.float32), n_group, axis=0)  # [n_head, n_seen, hd]
    values = np.repeat(cache.v[layer_index][:, :n_seen].astype(np.float32), n_group, axis=0)  # [n_head, n_seen, hd]
    scores = np.einsum("thd,hsd->hts", q, keys) * np.float32(scale)  # [n_head, n_tok, n_seen]
    distance = positions[:, None] - np.arange(n_seen)[None, :]  # [n_tok, n_seen]
    hidden = (distance < 0) | ((distance >= window) if window > 0 else False)
    scores = np.where(hidden[None], -np.inf, scores)
    return np.einsum("hts,hsd->thd", softmax(scores), values)  # [n_tok, n_head, hd]


def feed_forward(layer: LayerWeights, x: np.ndarray) -> np.ndarray:
    """SwiGLU. x: [n_tok, n_embd] (normed) -> [n_tok, n_embd]."""
    gate = layer.w_gate(x)  # [n_tok, n_ff]
    up = layer.w_up(x)  # [n_tok, n_ff]
    return layer.w_down(silu(gate) * up)  # [n_tok, n_embd]


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
    return weights.output(rmsnorm(x, weights.output_norm, hp.rms_eps))  # [n_tok or 1, n_vocab]


class LlamaModel:
    """Hyperparameters and float32 weights; shared by any number of sessions."""

    forward = staticmethod(forward)

    def __init__(self, hp: LlamaHparams, weights: LlamaWeights):
        self.hp = hp
        self.weights = weights

    @property
    def n_ctx_train(self) -> int:
        return self.hp.n_ctx_train

    @property
    def nbytes(self) -> dict[str, int]:
        """Memory the dequantized weights hold (the tied output shares the embedding's)."""
        if self.weights is None:
            return {"weights": 0}
        arrays = {id(a): a for a in _arrays(self.weights)}
        return {"weights": sum(a.nbytes for a in arrays.values())}

    def close(self) -> None:
        """Drop the weights (the sessions made from this model must not be used after)."""
        self.weights = None

    @classmethod
    def from_tensors(cls, tensors: GgufTensors, activations: str = "q8") -> "LlamaModel":
        return cls(*load_llama(tensors, activations))

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
        logits = self.model.forward(self.model.hp, self.model.weights, self.cache, token_array, start_pos, all_logits)
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
        if start_pos < 0:
            raise InvalidInput(f"start position {start_pos} is negative")
        if start_pos + token_array.size > self.n_ctx:
            raise ContextOverflow(f"positions {start_pos}..{start_pos + token_array.size - 1} do not fit the context of {self.n_ctx}")
        return token_array


def _arrays(value: Any):
    """Every numpy array inside a weights dataclass (lists and Linear included)."""
    if isinstance(value, np.ndarray):
        yield value
    elif isinstance(value, list):
        for item in value:
            yield from _arrays(item)
    elif hasattr(value, "__dataclass_fields__"):
        for name in value.__dataclass_fields__:
            yield from _arrays(getattr(value, name))
