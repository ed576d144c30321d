# ruff: noqa: E501  (the mapping table in the docstring is Markdown: one row a line)
"""llama.cpp's C API behind the adapter API (``python:ggufsm.conformance.adapters.llama_cpp_c:make_adapter``).

It calls the C functions through the low-level ``llama_cpp`` module that
llama-cpp-python ships (ctypes over ``libllama.so``; the same install as the
llama-cpp-python peer, none of its ``Llama`` class). So the report judges
llama.cpp itself: what its NULL returns, its ``llama_decode`` return codes
and its ``GGML_ASSERT``s do in each cell. The adapter adds nothing to make a
case pass: no lock, no validation, no state machine; it holds the pointers a
C caller would hold and calls what a C caller would call.

| operation | llama.cpp C API |
| --- | --- |
| init_runtime | ``llama_backend_init()``; n_ctx / n_threads kept for ``llama_context_params`` (llama.cpp checks them only when a context is made) |
| load_model | ``llama_model_load_from_file`` then ``llama_init_from_model`` (n_batch = n_ctx, so a prompt that fits the context fits one batch); on success the previous context and model are freed (a caller with one model variable) |
| set_sampling | a new sampler chain (``llama_sampler_chain_init`` + penalties, top-k, top-p, min-p, temp, dist; greedy at temperature 0): the C API's sampling object. It replaces the open request's chain (the caller's one sampler pointer) and is used by later generates |
| generate | ``llama_tokenize``, ``llama_memory_clear`` (a new request), ``llama_decode`` of the prompt, then ``llama_sampler_sample`` / ``llama_decode`` per token until max_tokens, an end-of-generation token (``llama_vocab_is_eog``: finish ``stop``) or ``llama_decode`` returning 1 for a generated token (no KV slot left: finish ``context``); a generate's own sampling builds a chain for that request; ``stop_at_eos=False`` adds ``llama_sampler_init_logit_bias`` with -inf on every EOG token |
| generate_next_token | ``llama_decode`` of the last sampled token, then ``llama_sampler_sample`` |
| reset | ``llama_memory_clear(llama_get_memory(ctx), true)`` and ``llama_sampler_reset`` |
| free | ``llama_free(ctx)``, ``llama_model_free(model)`` (both accept NULL: ``delete``), the pointers set to NULL (what a C caller does; later calls find no model) |
| cancel | a flag the token loop reads before each ``llama_decode``, and ``llama_set_abort_callback`` so a running prompt decode stops too; the flag is lowered when that generate returns |
| replace_model, state, last_error, diagnostics | no counterpart in the C API: NotSupported |

Errors, as llama.cpp gives them:

- ``llama_model_load_from_file`` returns NULL for every failure (missing file,
  malformed GGUF, unknown architecture): one NULL cannot be told apart, so it
  is reported as InvalidModel with llama.cpp's last error log line as the
  message. The ModelUnavailable and UnsupportedModel cells fail on that: a
  finding about the API, not the adapter.
- ``llama_init_from_model`` returning NULL (a context it cannot make) is
  InvalidInput, the table's code for a configuration out of range.
- ``llama_decode``: 1 (no KV slot for the batch) is ContextOverflow, -1
  (invalid batch: a token id out of range, an empty batch) is InvalidInput,
  2 (aborted by the abort callback) is Cancelled; any other non-zero value is
  an unexpected failure. ``llama_tokenize`` cannot fail on text the model's
  vocabulary reads, so an empty prompt reaches ``llama_decode``.
- With no model (before a load, after free) there is no pointer to pass:
  ModelNotLoaded, the only thing a C caller can do (passing NULL would crash).

``GGML_NO_BACKTRACE`` is set so that a ``GGML_ASSERT`` aborts at once instead
of attaching gdb to print a backtrace (which can hang where ptrace is denied):
the runner then records SIGABRT, the abort, rather than a hang.
"""

from __future__ import annotations

import ctypes
import functools
import os
import threading
from typing import Any

from ggufsm.conformance.adapter import INTERNAL_ERROR, PythonAdapter, TokenCallback, attach_partial_value
from ggufsm.spec.errors import Cancelled, ContextOverflow, GgufsmError, InvalidInput, InvalidModel, ModelNotLoaded
from ggufsm.spec.names import FinishReason

os.environ.setdefault("GGML_NO_BACKTRACE", "1")

DECODE_NO_KV_SLOT, DECODE_ABORTED, DECODE_INVALID_BATCH = 1, 2, -1
GGML_LOG_LEVEL_ERROR = 3
# The sampler chain's defaults where a setting is not given: off (llama.cpp's own "no effect" values).
SAMPLING_DEFAULTS = {"temperature": 0.0, "top_k": 0, "top_p": 1.0, "min_p": 0.0, "repetition_penalty": 1.0,
                     "repeat_last_n": 64, "seed": None}
LLAMA_DEFAULT_SEED = 0xFFFFFFFF


class DecodeFailed(GgufsmError):
    """llama_decode returned a code the API documents as an error with no table counterpart."""

    code = INTERNAL_ERROR  # type: ignore[assignment]


class _Log:
    """llama.cpp's log, which is where it says why a call returned NULL: the last error line is kept.
    One for the process (`_log()`): llama.cpp keeps the callback's address for good, so the ctypes
    callback must never be freed (a freed one is called by the next log line: a segfault)."""

    def __init__(self, llama_cpp: Any) -> None:
        self.last_error = ""

        def receive(level: int, text: bytes, _user: Any) -> None:
            if level == GGML_LOG_LEVEL_ERROR and text:
                self.last_error = text.decode("utf-8", "replace").strip()

        self._callback = llama_cpp.llama_log_callback(receive)   # kept alive: llama.cpp holds the pointer
        llama_cpp.llama_log_set(self._callback, ctypes.c_void_p(0))


@functools.lru_cache(maxsize=1)
def _log(llama_cpp: Any) -> _Log:
    return _Log(llama_cpp)


class LlamaCppCAdapter(PythonAdapter):
    name = "llama.cpp-c-api"

    def __init__(self) -> None:
        import llama_cpp

        self._c = llama_cpp
        self.version = f"llama.cpp {_build_commit(llama_cpp)} via llama_cpp {llama_cpp.__version__}"
        self._log = _log(llama_cpp)
        self._n_ctx: int | None = None
        self._n_threads = 0
        self._model: Any = None
        self._ctx: Any = None
        self._vocab: Any = None
        self._chain_settings: dict[str, Any] = {}   # set_sampling's chain, rebuilt per model
        self._request_chain: Any = None
        self._pending_token: int | None = None
        self._cancel = threading.Event()
        self._generating = threading.Event()
        self._abort_callback = llama_cpp.ggml_abort_callback(lambda _data: self._cancel.is_set())
        super().__init__()

    def close(self) -> None:
        self._cancel.set()
        self._release()

    # ── commands ──

    def op_init_runtime(self, n_ctx: int | None = None, n_threads: int = 0) -> None:
        self._c.llama_backend_init()
        self._n_ctx, self._n_threads = n_ctx, n_threads

    def op_load_model(self, path: str) -> dict[str, Any]:
        c = self._c
        model_params = c.llama_model_default_params()
        self._log.last_error = ""
        model = c.llama_model_load_from_file(os.fsencode(os.fspath(path)), model_params)
        if not model:
            raise InvalidModel(f"llama_model_load_from_file returned NULL ({self._log.last_error or 'no log line'})")
        ctx = c.llama_init_from_model(model, self._context_params(model))
        if not ctx:
            c.llama_model_free(model)
            raise InvalidInput(f"llama_init_from_model returned NULL ({self._log.last_error or 'no log line'})")
        self._release()
        self._model, self._ctx, self._vocab = model, ctx, c.llama_model_get_vocab(model)
        c.llama_set_abort_callback(ctx, self._abort_callback, None)
        return {"n_ctx": c.llama_n_ctx(ctx), "n_vocab": c.llama_vocab_n_tokens(self._vocab)}

    def _context_params(self, model: Any) -> Any:
        params = self._c.llama_context_default_params()
        n_ctx = self._n_ctx if self._n_ctx is not None else self._c.llama_model_n_ctx_train(model)
        # Cast as the C struct does: a negative n_ctx becomes a huge unsigned one, as in a C caller's code.
        params.n_ctx = n_ctx & 0xFFFFFFFF
        params.n_batch = params.n_ubatch = params.n_ctx
        if self._n_threads:
            params.n_threads = params.n_threads_batch = self._n_threads
        params.no_perf = True
        return params

    def op_set_sampling(self, **settings: Any) -> None:
        self._chain_settings = dict(settings)
        if self._request_chain is not None:   # the caller's one sampler pointer now points at the new chain
            self._free_request_chain()
            self._request_chain = self._chain(self._chain_settings, ban_eog=False)

    def op_generate(self, prompt: str | list[int], max_tokens: int = 16, stop_at_eos: bool = True,
                    sampling: dict[str, Any] | None = None, on_token: TokenCallback | None = None) -> dict[str, Any]:
        ctx = self._require_context()
        c = self._c
        tokens = prompt if isinstance(prompt, list) else self._tokenize(prompt)
        c.llama_memory_clear(c.llama_get_memory(ctx), True)
        self._pending_token = None
        self._free_request_chain()
        self._request_chain = self._chain({**self._chain_settings, **(sampling or {})}, ban_eog=not stop_at_eos)
        self._cancel.clear()
        self._generating.set()
        generated: list[int] = []
        finish = FinishReason.length
        try:
            self._decode(tokens)
            while len(generated) < max_tokens:
                if self._cancel.is_set():
                    finish = FinishReason.cancelled
                    break
                if generated and not self._decode_generated(generated[-1]):
                    finish = FinishReason.context
                    break
                token = int(c.llama_sampler_sample(self._request_chain, ctx, -1))
                if stop_at_eos and c.llama_vocab_is_eog(self._vocab, token):
                    finish = FinishReason.stop
                    break
                generated.append(token)
                if on_token is not None:
                    on_token({"token_id": token, "text": self._piece(token), "index": len(generated) - 1})
        except Cancelled:
            finish = FinishReason.cancelled
        finally:
            self._generating.clear()
            self._cancel.clear()
        self._pending_token = generated[-1] if generated else None
        result = {"token_ids": generated, "text": "".join(self._piece(token) for token in generated),
                  "finish_reason": finish}
        if finish == FinishReason.cancelled:
            raise attach_partial_value(Cancelled(f"cancelled after {len(generated)} token(s)"), result)
        return result

    def op_generate_next_token(self) -> dict[str, Any]:
        ctx = self._require_context()
        if self._request_chain is None:
            self._request_chain = self._chain(self._chain_settings, ban_eog=False)
        if self._pending_token is not None:
            self._decode([self._pending_token])
        token = int(self._c.llama_sampler_sample(self._request_chain, ctx, -1))
        self._pending_token = token
        return {"token_id": token, "text": self._piece(token)}

    def op_reset(self) -> None:
        ctx = self._require_context()
        self._c.llama_memory_clear(self._c.llama_get_memory(ctx), True)
        if self._request_chain is not None:
            self._c.llama_sampler_reset(self._request_chain)
        self._pending_token = None

    def op_free(self) -> None:
        self._release()

    def op_cancel(self) -> dict[str, bool]:
        running = self._generating.is_set()
        if running:
            self._cancel.set()
        return {"was_running": running}

    # ── the C calls ──

    def _require_context(self) -> Any:
        if not self._ctx:
            raise ModelNotLoaded("no llama_context: no model was loaded, or it was freed")
        return self._ctx

    def _release(self) -> None:
        c = self._c
        self._free_request_chain()
        ctx, model = self._ctx, self._model
        self._ctx = self._model = self._vocab = None
        self._pending_token = None
        if ctx:
            c.llama_free(ctx)
        if model:
            c.llama_model_free(model)

    def _free_request_chain(self) -> None:
        chain, self._request_chain = self._request_chain, None
        if chain:
            self._c.llama_sampler_free(chain)

    def _tokenize(self, text: str) -> list[int]:
        c = self._c
        data = text.encode("utf-8")
        capacity = len(data) + 8
        buffer = (c.llama_token * capacity)()
        count = c.llama_tokenize(self._vocab, data, len(data), buffer, capacity, True, False)
        if count < 0:   # the negative of the count it needs
            capacity = -count
            buffer = (c.llama_token * capacity)()
            count = c.llama_tokenize(self._vocab, data, len(data), buffer, capacity, True, False)
        return list(buffer[:count])

    def _piece(self, token: int) -> str:
        buffer = ctypes.create_string_buffer(64)
        size = self._c.llama_token_to_piece(self._vocab, token, buffer, len(buffer), 0, False)
        if size < 0:
            buffer = ctypes.create_string_buffer(-size)
            size = self._c.llama_token_to_piece(self._vocab, token, buffer, len(buffer), 0, False)
        return buffer.raw[:max(size, 0)].decode("utf-8", "replace")

    def _decode_generated(self, token: int) -> bool:
        """Evaluate a generated token; False where llama_decode finds no KV slot for it (the context is full)."""
        try:
            self._decode([token])
        except ContextOverflow:
            return False
        return True

    def _decode(self, tokens: list[int]) -> None:
        c = self._c
        array = (c.llama_token * max(len(tokens), 1))(*tokens)
        code = c.llama_decode(self._ctx, c.llama_batch_get_one(array, len(tokens)))
        if code == 0:
            return
        reason = self._log.last_error or "no log line"
        if code == DECODE_NO_KV_SLOT:
            raise ContextOverflow(f"llama_decode returned 1: no KV cache slot for {len(tokens)} token(s) ({reason})")
        if code == DECODE_INVALID_BATCH:
            raise InvalidInput(f"llama_decode returned -1: invalid batch of {len(tokens)} token(s) ({reason})")
        if code == DECODE_ABORTED:
            raise Cancelled("llama_decode returned 2: aborted by the abort callback")
        raise DecodeFailed(f"llama_decode returned {code} ({reason})")

    def _chain(self, settings: dict[str, Any], *, ban_eog: bool) -> Any:
        """A sampler chain from the protocol's settings, each passed to llama.cpp as given."""
        c = self._c
        value = {**SAMPLING_DEFAULTS, **settings}
        chain = c.llama_sampler_chain_init(c.llama_sampler_chain_default_params())
        add = c.llama_sampler_chain_add
        if ban_eog:
            add(chain, self._eog_ban())
        add(chain, c.llama_sampler_init_penalties(c.llama_vocab_n_tokens(self._vocab), int(value["repeat_last_n"]),
                                                  float(value["repetition_penalty"]), 0.0, 0.0))
        if float(value["temperature"]) == 0.0:
            add(chain, c.llama_sampler_init_greedy())
            return chain
        add(chain, c.llama_sampler_init_top_k(int(value["top_k"])))
        add(chain, c.llama_sampler_init_top_p(float(value["top_p"]), 1))
        add(chain, c.llama_sampler_init_min_p(float(value["min_p"]), 1))
        add(chain, c.llama_sampler_init_temp(float(value["temperature"])))
        seed = value["seed"]
        add(chain, c.llama_sampler_init_dist(LLAMA_DEFAULT_SEED if seed is None else int(seed) & 0xFFFFFFFF))
        return chain

    def _eog_ban(self) -> Any:
        c = self._c
        n_vocab = c.llama_vocab_n_tokens(self._vocab)
        eog = [token for token in range(n_vocab) if c.llama_vocab_is_eog(self._vocab, token)]
        biases = (c.llama_logit_bias * max(len(eog), 1))()
        for slot, token in enumerate(eog):
            biases[slot].token, biases[slot].bias = token, float("-inf")
        return c.llama_sampler_init_logit_bias(n_vocab, len(eog), biases)


def _build_commit(llama_cpp: Any) -> str:
    """The llama.cpp version the library reports of itself (``llama_version()``: build number and commit)."""
    try:
        return llama_cpp.llama_version().decode()
    except (AttributeError, OSError):
        return "(version not reported)"


def make_adapter() -> LlamaCppCAdapter:
    return LlamaCppCAdapter()


SOURCE_ENV = "GGUFSM_LLAMA_CPP_SOURCE"   # a checkout of the llama.cpp source the library was built from


def provenance() -> dict[str, Any]:
    """What the library says of itself (version, the CPU backend's variant), and the source revision."""
    import llama_cpp

    from ggufsm.conformance.provenance import REPORTED, fact, source_revision

    facts = {"llama_version": fact(llama_cpp.llama_version().decode(), REPORTED, "llama_version()"),
             "system_info": fact(llama_cpp.llama_print_system_info().decode().strip(), REPORTED,
                                 "llama_print_system_info(): the CPU backend's compiled features")}
    return facts | source_revision(os.environ.get(SOURCE_ENV))
