"""The llama forward pass in numpy, readable top to bottom.

This is the reference: the fused C++ forward (`ggufsm._core`, cpp/forward/)
is tested equal to it. It never feeds the fused forward: both read the same
hyperparameters, which the C++ core validates and resolves from the file by
the architecture's declaration (cpp/gguf/architectures.cpp), and the tensor
names below are tested equal to that declaration
(tests/inference/test_declarations.py). Architecture `llama` as SmolLM2 uses it: token
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
kernels (cpp/kernels/matmul.h) and llama.cpp do: SmolLM2's logits move
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

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from enum import Enum
from typing import Any

import numpy as np
from gguf import GGML_QUANT_SIZES, GGMLQuantizationType

from ggufsm.spec.errors import ContextOverflow, InvalidInput, ModelNotLoaded, UnsupportedModel

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
    attn_scale: float = 0.0  # multiplies q.k: 1/sqrt(head_dim)

    @property
    def n_group(self) -> int:
        """Query heads that share one key/value head."""
        return self.n_head // self.n_head_kv

    @classmethod
    def from_core(cls, hp: Mapping[str, Any]):
        """This oracle's hyperparameters from the C++ core's validated ones (`GgufFile.hyperparameters`)."""
        renamed = {"head_dim": "head_dim_k"}
        values = {field.name: hp[renamed.get(field.name, field.name)] for field in fields(cls)}
        values["rope_style"] = RopeStyle(values["rope_style"])
        return cls(**values)


def require_switches(hp: Mapping[str, Any], architecture: str, **implemented: Any) -> None:
    """The declared switches (hyperparameters the files do not store) must be the ones this oracle's code computes."""
    if hp["architecture"] != architecture:
        raise UnsupportedModel(f"general.architecture is {hp['architecture']!r}; the {architecture} oracle runs {architecture!r}")
    differing = {name: (hp[name], value) for name, value in implemented.items() if hp[name] != value}
    if differing:
        raise UnsupportedModel(f"the {architecture} declaration's switches {differing} (declared, implemented) differ from "
                               "what this oracle computes")


# The switches this file's forward computes (cpp/gguf/architectures.cpp declares them for `llama`).
LLAMA_SWITCHES = {"rope_style": "normal", "ffn": "swiglu", "qk_norm": False, "post_norms": False, "embd_scale": 1.0,
                  "swa_period": 0}


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


# Field -> the GGUF name of its tensor in block i ("blk.{i}.<name>.weight").
LAYER_TENSORS = {
    "attn_norm": "attn_norm", "wq": "attn_q", "wk": "attn_k", "wv": "attn_v", "wo": "attn_output",
    "ffn_norm": "ffn_norm", "w_gate": "ffn_gate", "w_up": "ffn_up", "w_down": "ffn_down",
}
MODEL_TENSORS = ("token_embd", "output_norm", "output")  # "output" optional: tied to token_embd when absent


def dense(tensors: GgufTensors, name: str) -> np.ndarray:
    """Tensor `name` in float32 (the C++ validation has checked it is there, with its declared shape)."""
    return tensors.dense(name)


def linear(tensors: GgufTensors, name: str, round_activations: bool) -> Linear:
    block = activation_block(tensors.tensors[name].qtype) if round_activations else 0
    return Linear(dense(tensors, name), block)


def layer_weights(tensors: GgufTensors, i: int, layer_tensors: Mapping[str, str], activations: str) -> dict[str, Any]:
    """Block i's tensors by field: norms as float32 vectors, matrices as Linear."""
    return {field: (dense(tensors, f"blk.{i}.{suffix}.weight") if field.endswith("norm")
                    else linear(tensors, f"blk.{i}.{suffix}.weight", activations == "q8"))
            for field, suffix in layer_tensors.items()}


def load_llama(tensors: GgufTensors, activations: str = "q8") -> tuple[LlamaHparams, LlamaWeights]:
    """Hyperparameters and float32 weights of a llama model.

    activations: "q8" rounds activations as the fused kernels do, "f32" keeps them float32.
    """
    require_switches(tensors.hyperparameters, "llama", **LLAMA_SWITCHES)
    hp = LlamaHparams.from_core(tensors.hyperparameters)
    weights = load_shared_weights(tensors, hp, activations)
    for i in range(hp.n_layer):
        weights.layers.append(LayerWeights(**layer_weights(tensors, i, LAYER_TENSORS, activations)))
    return hp, weights


def load_shared_weights(tensors: GgufTensors, hp: LlamaHparams, activations: str) -> LlamaWeights:
    """Embedding, final norm and output projection; `layers` left empty for the architecture to fill."""
    if activations not in ("q8", "f32"):
        raise InvalidInput(f"activations is {activations!r}; one of 'q8', 'f32'")
    token_embd = dense(tensors, "token_embd.weight")
    if tensors.has("output.weight"):
        output = linear(tensors, "output.weight", activations == "q8")
    else:
        block = activation_block(tensors.tensors["token_embd.weight"].qtype) if activations == "q8" else 0
        output = Linear(token_embd, block)
    return LlamaWeights(token_embd, [], dense(tensors, "output_norm.weight"), output)


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
    def empty(cls, hp: LlamaHparams, n_ctx: int) -> KvCache:
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
    mixed = cached_attention(cache, layer_index, q, k, v, positions, hp.attn_scale, window=0)
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
    def from_tensors(cls, tensors: GgufTensors, activations: str = "q8") -> LlamaModel:
        return cls(*load_llama(tensors, activations))

    def new_session(self, n_ctx: int) -> LlamaSession:
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
