"""llama-cpp-python's ``Llama`` behind the adapter API (``python:ggufsm.conformance.adapters.llama_cpp_python:make_adapter``).

Each operation maps to what the library offers, and nothing is added to make
a case pass: no lock, no validation, no state machine of our own.

| operation | llama-cpp-python |
| --- | --- |
| init_runtime | records n_ctx / n_threads for the next ``Llama(...)`` (taken at context creation; nothing validated earlier) |
| load_model | ``Llama(model_path, n_ctx, n_threads)``; the previous object, if any, is dropped (no "already loaded") |
| generate | ``create_completion(prompt, stream=True, ...)``; a token event as ``Llama.generate`` yields each token; |
| | ``stop_at_eos=False`` bans EOS with a logits processor; cancel stops that generator at its next token |
| generate_next_token | ``Llama.eval([last token])`` then ``Llama.sample(...)``, the library's own continuation primitives |
| reset | ``Llama.reset()`` |
| free | ``Llama.close()``; the closed object is kept and used by later calls, as a caller's reference would be |
| cancel | stop consuming the stream at the next token (the library's way to stop a completion) |
| set_sampling, replace_model, state, last_error, diagnostics | none in the library: NotSupported |

Errors: ``ValueError("Model path does not exist")`` is ModelUnavailable, any
other load failure InvalidModel (the library does not tell malformed from
unsupported), ``ValueError("... exceed context window ...")`` ContextOverflow.
Anything else is reported as an unexpected failure.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Iterator
from typing import Any

from ggufsm.conformance.adapter import PythonAdapter, TokenCallback, attach_partial_value
from ggufsm.spec.errors import Cancelled, ContextOverflow, InvalidModel, ModelNotLoaded, ModelUnavailable
from ggufsm.spec.names import FinishReason

_SAMPLING_NAMES = {"temperature": "temperature", "top_k": "top_k", "top_p": "top_p", "min_p": "min_p",
                   "repetition_penalty": "repeat_penalty", "seed": "seed"}
_SAMPLE_NAMES = {"temperature": "temp", "top_k": "top_k", "top_p": "top_p", "min_p": "min_p",
                 "repetition_penalty": "repeat_penalty"}


class LlamaCppPythonAdapter(PythonAdapter):
    name = "llama-cpp-python"

    def __init__(self) -> None:
        import llama_cpp

        self.version = llama_cpp.__version__
        self._llama_cpp = llama_cpp
        self._settings: dict = {}
        self._llm = None
        self._pending_token: int | None = None   # sampled by the last call, not yet evaluated
        self._request_sampling: dict = {}
        self._cancel = threading.Event()
        self._generating = threading.Event()
        super().__init__()

    def close(self) -> None:
        self._cancel.set()
        llm, self._llm = self._llm, None
        if llm is not None:
            llm.close()

    # ── commands ──

    def op_init_runtime(self, n_ctx: int | None = None, n_threads: int = 0) -> None:
        self._settings = {"n_ctx": n_ctx, "n_threads": n_threads or None}

    def op_load_model(self, path: str) -> dict[str, Any]:
        try:
            llm = _RecordingLlama(model_path=str(path), verbose=False, **self._llama_settings())
        except ValueError as error:
            raise (ModelUnavailable if "does not exist" in str(error) else InvalidModel)(str(error)) from None
        self._llm, self._pending_token = llm, None
        return {"n_ctx": llm.n_ctx(), "n_vocab": llm.n_vocab()}

    def _llama_settings(self) -> dict[str, Any]:
        settings = {key: value for key, value in self._settings.items() if value is not None}
        return settings

    def op_generate(self, prompt: str | list[int], max_tokens: int = 16, stop_at_eos: bool = True,
                    sampling: dict[str, Any] | None = None, on_token: TokenCallback | None = None) -> dict[str, Any]:
        llm = self._require_model()
        sampling = dict(sampling or {})
        arguments = {_SAMPLING_NAMES[name]: value for name, value in sampling.items()}
        if not stop_at_eos:
            arguments["logits_processor"] = self._llama_cpp.LogitsProcessorList([_ban(llm.token_eos())])
        self._cancel.clear()
        self._generating.set()
        llm.observed, llm.on_token, llm.stop = [], on_token, self._cancel
        finish_reason = None
        try:
            stream = llm.create_completion(prompt, max_tokens=max_tokens, stream=True, **arguments)
            for chunk in stream:
                finish_reason = chunk["choices"][0].get("finish_reason") or finish_reason
                if self._cancel.is_set():
                    break
            stream.close()
            if self._cancel.is_set():
                finish_reason = FinishReason.cancelled
        except ValueError as error:
            if "exceed context window" in str(error):
                raise ContextOverflow(str(error)) from None
            raise
        finally:
            self._generating.clear()
        tokens = list(llm.observed)
        self._pending_token = tokens[-1] if tokens else None
        self._request_sampling = {_SAMPLE_NAMES[name]: value for name, value in sampling.items() if name in _SAMPLE_NAMES}
        if finish_reason == FinishReason.cancelled:
            raise attach_partial_value(Cancelled(f"the stream was closed after {len(tokens)} token(s)"),
                                       {"token_ids": tokens, "text": "", "finish_reason": FinishReason.cancelled})
        return {"token_ids": tokens, "text": llm.detokenize(tokens).decode("utf-8", "replace"),
                "finish_reason": finish_reason or FinishReason.length}

    def op_generate_next_token(self) -> dict[str, Any]:
        llm = self._require_model()
        if self._pending_token is not None:
            llm.eval([self._pending_token])
        token = llm.sample(**self._request_sampling)
        self._pending_token = token
        return {"token_id": int(token), "text": llm.detokenize([token]).decode("utf-8", "replace")}

    def op_reset(self) -> None:
        if self._llm is not None:
            self._llm.reset()

    def op_free(self) -> None:
        if self._llm is not None:
            self._llm.close()

    def op_cancel(self) -> dict[str, bool]:
        running = self._generating.is_set()
        if running:
            self._cancel.set()
        return {"was_running": running}

    def _require_model(self) -> Any:
        # With no Llama object there is nothing to call: the library's equivalent of "no model".
        if self._llm is None:
            raise ModelNotLoaded("no Llama object has been created")
        return self._llm


def _ban(token: int) -> Callable[[Any, Any], Any]:
    import numpy as np

    def processor(input_ids: Any, scores: Any) -> Any:
        scores[token] = -np.inf
        return scores
    return processor


@functools.lru_cache(maxsize=1)
def _recording_llama_class() -> type:
    from llama_cpp import Llama

    class RecordingLlama(Llama):
        """Llama, observing the token ids its generator yields (create_completion streams text only, and
        holds text back while it may be part of a stop string or an unfinished UTF-8 character): each
        token is reported as it is produced, and the generator stops at the next token once `stop` is
        set (cancel: the library's own way to end a completion is to stop consuming its tokens)."""

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            self.observed: list[int] = []
            self.on_token: TokenCallback | None = None
            self.stop: threading.Event | None = None
            super().__init__(*args, **kwargs)

        def generate(self, *args: Any, **kwargs: Any) -> Iterator[Any]:  # type: ignore[override,unused-ignore]  # override only where llama_cpp is installed
            for token in super().generate(*args, **kwargs):
                self.observed.append(int(token))
                if self.on_token is not None:
                    self.on_token({"token_id": int(token), "text": self.detokenize([token]).decode("utf-8", "replace"),
                                   "index": len(self.observed) - 1})
                yield token
                if self.stop is not None and self.stop.is_set():
                    return

    return RecordingLlama


def _RecordingLlama(**kwargs: Any) -> Any:
    return _recording_llama_class()(**kwargs)


def make_adapter() -> LlamaCppPythonAdapter:
    return LlamaCppPythonAdapter()
