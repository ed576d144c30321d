"""The fused C++ forward (`ggufsm._core.LlamaModel`) behind the model/session contract the Runtime uses.

The C++ model holds views of the file's tensor bytes, never a copy: the tensor
arrays handed to it (views over the memory map) stay referenced by the C++
model object, and every session keeps its model object alive. Each prefill or
decode is one C++ call with the GIL released; the session's KV cache is
float32 (docs/benchmarks.md, "Forward", says why).
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from ggufsm import _core
from ggufsm.spec.errors import InvalidInput, ModelNotLoaded

from .weights import GgufTensors

N_BATCH = 512  # tokens per prefill chunk: llama.cpp's default, and where the batched kernels stop gaining


class FusedModel:
    """One model's weights in place and its thread pool; shared by any number of sessions."""

    def __init__(self, hp: Any, core_hparams: dict[str, Any], tensors: GgufTensors, n_threads: int):
        self.hp = hp  # the architecture's hyperparameters (reference/architectures/llama.py, reference/architectures/gemma3.py)
        views = {name: (int(t.qtype), t.shape, t.data) for name, t in tensors.tensors.items()}
        self._core: _core.LlamaModel | None = _core.LlamaModel(core_hparams, views, n_threads)
        self._mapped = sum(t.data.nbytes for t in tensors.tensors.values())

    @property
    def n_ctx_train(self) -> int:
        return self.hp.n_ctx_train

    @property
    def n_threads(self) -> int:
        return self._core.n_threads if self._core else 0

    @property
    def nbytes(self) -> dict[str, int]:
        """Tensor bytes this model reads in place (mapped from the file, not copied)."""
        return {"weights_mapped": self._mapped if self._core else 0}

    def new_session(self, n_ctx: int, n_batch: int = N_BATCH) -> "FusedSession":
        if self._core is None:
            raise ModelNotLoaded("new_session on a closed model")
        return FusedSession(self, n_ctx, n_batch)

    def close(self) -> None:
        """Let go of the weights; they are freed once the sessions made from this model are closed too."""
        self._core = None


class FusedSession:
    """One sequence: KV cache of n_ctx positions, scratch for n_batch tokens, logits."""

    def __init__(self, model: FusedModel, n_ctx: int, n_batch: int):
        self.model = model
        self.n_ctx = n_ctx
        self._core: _core.LlamaSession | None = _core.LlamaSession(model._core, n_ctx, n_batch)

    @property
    def nbytes(self) -> dict[str, int]:
        """Memory this session holds, by buffer."""
        return dict(self._core.nbytes) if self._core else {"kv_cache": 0, "scratch": 0, "logits": 0}

    def close(self) -> None:
        self._core = None

    def prefill(self, tokens: Sequence[int], start_pos: int = 0) -> np.ndarray:
        """Tokens at positions start_pos..; logits [n_vocab] of the last."""
        return self._running().prefill(_token_array(tokens), start_pos)

    def decode(self, token: int, pos: int) -> np.ndarray:
        """One token at position pos, attending to the cache's positions 0..pos; logits [n_vocab]."""
        return self._running().decode(_token_array([token])[0], pos)

    def _running(self) -> _core.LlamaSession:
        if self._core is None or self.model._core is None:
            raise ModelNotLoaded("this session (or its model) has been closed")
        return self._core


def _token_array(tokens: Sequence[int]) -> np.ndarray:
    """tokens as int64 [n]; the C++ side checks them against n_vocab."""
    try:
        array = np.asarray(tokens)
    except (OverflowError, ValueError) as error:
        raise InvalidInput(f"token ids must be integers: {error}") from error
    if array.size and array.dtype.kind not in "iu":
        raise InvalidInput(f"token ids must be integers, got {array.dtype} values")
    if array.dtype.kind == "u" and array.size and array.max() > np.iinfo(np.int64).max:
        raise InvalidInput(f"token id {int(array.max())} is outside the vocabulary")
    return array.astype(np.int64).reshape(-1)
