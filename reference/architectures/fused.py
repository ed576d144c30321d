"""The fused C++ forward (`ggufsm._core.LlamaModel`) behind the model/session contract the Runtime uses.

The C++ model is built from the C++ core's own validated file (`GgufFile.core`):
its hyperparameters, tensor names and shapes come from the architecture's
declaration in C++ (cpp/gguf/architectures.cpp), never from Python. It holds
views of the file's tensor bytes, never a copy, and keeps the file alive;
every session keeps its model alive. Each prefill or decode is one C++ call
with the GIL released, and returns the session's own logits buffer as a
read-only array, overwritten by the session's next call (no copy per token).

Every FusedModel of one file and thread count holds a lease on the same C++
model (shared_forward.py); a session made with `batched=True` asks that
model's scheduler for its decode steps, so sessions of several handles
generating at once decode as one pass (reference/runtime/batching.py).
"""

from __future__ import annotations

import weakref
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

import numpy as np

from ggufsm import _core
from ggufsm.reference.architectures import shared_forward
from ggufsm.reference.model.gguf_file import GgufFile
from ggufsm.spec.errors import ModelNotLoaded

N_BATCH = 512  # tokens per prefill chunk: llama.cpp's default, and where the batched kernels stop gaining


class FusedModel:
    """One holder's lease on the file's shared C++ model (weights, thread pool); any number of sessions."""

    def __init__(self, gguf_file: GgufFile, n_threads: int):
        self._lease: shared_forward.Lease | None = shared_forward.acquire(gguf_file.core, n_threads)
        # A model dropped without close() (a test, a bench) still gives its lease back.
        self._release = weakref.finalize(self, self._lease.release)
        self._core: _core.LlamaModel | None = self._lease.model
        # The validated hyperparameters, read-only, for reports; the C++ model took its own from the same file.
        self.hp: Mapping[str, Any] = MappingProxyType(gguf_file.hyperparameters)
        self._mapped = self._core.weights_mapped
        self._n_ctx_train = self._core.n_ctx_train

    @property
    def n_ctx_train(self) -> int:
        return self._n_ctx_train

    @property
    def n_threads(self) -> int:
        return self._core.n_threads if self._core else 0

    @property
    def nbytes(self) -> dict[str, int]:
        """Tensor bytes this model reads in place (mapped from the file, not copied)."""
        return {"weights_mapped": self._mapped if self._core else 0}

    @property
    def scales_checked(self) -> Mapping[int, int | None]:
        """The finite-weights verdicts the build made in its own read of the weights (`_core.LlamaModel`)."""
        return self._running().scales_checked

    def check_token_ids(self, tokens) -> None:
        """InvalidInput unless every token is an integer id of this model's vocabulary: the C++ core's one rule."""
        self._running().check_token_ids(tokens)

    def new_session(self, n_ctx: int, n_batch: int = N_BATCH, *, batched: bool = False) -> FusedSession:
        """batched: decode steps go through the shared model's scheduler (batched with other sessions' steps
        waiting at the same time); otherwise each is this session's own pass."""
        return FusedSession(self, n_ctx, n_batch, self._lease.scheduler if batched and self._lease else None)

    def close(self) -> None:
        """Give back the lease; the weights are freed once every holder and their sessions let go."""
        self._core = None
        self._lease = None
        self._release()

    def _running(self) -> _core.LlamaModel:
        if self._core is None:
            raise ModelNotLoaded("this model has been closed")
        return self._core


class FusedSession:
    """One sequence: KV cache of n_ctx positions, scratch for n_batch tokens, logits."""

    def __init__(self, model: FusedModel, n_ctx: int, n_batch: int, scheduler: Any = None):
        self.model = model
        self.n_ctx = n_ctx
        self.scheduler = scheduler  # the shared model's DecodeScheduler, or None: decode alone
        self._core: _core.LlamaSession | None = _core.LlamaSession(model._running(), n_ctx, n_batch)
        # The session's one logits buffer, viewed once: every batched decode step hands back this view rather
        # than a new one (an array, a capsule and its owner a token, made after the pass, when all is cold).
        self._logits: np.ndarray | None = self._core.logits

    @property
    def nbytes(self) -> dict[str, int]:
        """Memory this session holds, by buffer."""
        return dict(self._core.nbytes) if self._core else {"kv_cache": 0, "scratch": 0, "logits": 0}

    def close(self) -> None:
        self.idle()
        self._core = self._logits = None

    def idle(self) -> None:
        """This session asks for no decode step until its next request: the scheduler's gathering stops
        waiting for it (reference/runtime/batching.py, `withdraw`)."""
        if self.scheduler is not None and self._core is not None:
            self.scheduler.withdraw(self._core)

    def prefill(self, tokens, start_pos: int = 0) -> np.ndarray:
        """Tokens at positions start_pos..; logits [n_vocab] of the last (read-only, valid until the next call)."""
        return self._running().prefill(tokens, start_pos)

    def decode(self, token: int, pos: int) -> np.ndarray:
        """One token at position pos, attending to the cache's positions 0..pos; logits [n_vocab] (as prefill).
        Batched or not, the same logits, bit for bit (tests/runtime/test_batching.py)."""
        session = self._core
        if session is None or self.model._core is None:  # _running's check, without its frame each token
            session = self._running()
        if self.scheduler is not None:
            return self.scheduler.decode(session, token, pos, self._logits)
        return session.decode(token, pos)

    def _running(self) -> _core.LlamaSession:
        if self._core is None or self.model._core is None:
            raise ModelNotLoaded("this session (or its model) has been closed")
        return self._core
