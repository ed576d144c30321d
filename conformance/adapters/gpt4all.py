# ruff: noqa: E501  (the mapping table in the docstring is Markdown: one row a line)
"""GPT4All's Python API behind the adapter API (``python:ggufsm.conformance.adapters.gpt4all:make_adapter``).

``gpt4all`` 2.8.2 (PyPI) wraps its own backend, ``libllmodel`` over an older
llama.cpp, with a different lifecycle: the model object is made and loaded in
one constructor, every ``generate`` starts from an empty context
(``reset_context=True`` unless in a chat session), and generation parameters
are per call. The adapter maps each operation to that API and adds nothing:
no lock, no validation, no state.

| operation | gpt4all |
| --- | --- |
| init_runtime | records n_ctx / n_threads for the next ``GPT4All(...)`` (the library validates neither) |
| load_model | ``GPT4All(file name, model_path=its folder, allow_download=False, device="cpu", n_ctx, n_threads)``; the previous object is dropped after the new one is made. The constructor ignores ``LLModel.load_model()``'s False: a file the backend refuses still gives an object (with ``n_threads`` it raises ``Exception("Model not loaded")`` from ``set_thread_count``) |
| generate | ``GPT4All.generate(prompt, max_tokens, temp, top_k, top_p, min_p, repeat_penalty, repeat_last_n, callback=...)``; token ids come from the callback; text prompts only; without sampling settings, greedy as its docs say (``temp=0``, ``top_k=1``) |
| cancel | the callback returns False at the next token (the library's documented way to stop) |
| free | ``GPT4All.close()``; the closed object is kept and used by later calls, as a caller's reference would be |
| generate_next_token | none: a follow-up ``generate`` on the open context must add prompt text; NotSupported |
| set_sampling | none: sampling is per call; NotSupported |
| reset | none public (each generate resets its context itself); NotSupported |
| replace_model, state, last_error, diagnostics | none: NotSupported |

A generate with token ids as its prompt, or with ``stop_at_eos=False`` (the
library always stops at an end-of-generation token), has no counterpart
either and is answered NotSupported, never approximated.

Errors: ``FileNotFoundError`` (the library's "Model file does not exist") is
ModelUnavailable; ``RuntimeError("Unable to instantiate model: ...")`` is
UnsupportedModel where the backend says "Unsupported model architecture"
and InvalidModel otherwise (its "Unsupported file format" is what it says of
bytes that are not GGUF); any other exception is reported as an unexpected
failure with the library's own type and message (that is how
``Exception: Model not loaded`` shows).
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from ggufsm.conformance.adapter import NOT_SUPPORTED, PythonAdapter, TokenCallback, attach_partial_value
from ggufsm.spec.errors import Cancelled, GgufsmError, InvalidModel, ModelNotLoaded, ModelUnavailable, UnsupportedModel
from ggufsm.spec.names import FinishReason

# The protocol's sampling names and GPT4All.generate's.
_SAMPLING_NAMES = {"temperature": "temp", "top_k": "top_k", "top_p": "top_p", "min_p": "min_p",
                   "repetition_penalty": "repeat_penalty", "repeat_last_n": "repeat_last_n"}
_GREEDY = {"temp": 0.0, "top_k": 1}


class NoCounterpart(GgufsmError):
    """An argument the library has no way to honour: reported as not supported, never a pass."""

    code = NOT_SUPPORTED  # type: ignore[assignment]


class Gpt4AllAdapter(PythonAdapter):
    name = "gpt4all"

    def __init__(self) -> None:
        import gpt4all

        self._gpt4all = gpt4all
        self.version = _version()
        self._settings: dict[str, Any] = {}
        self._model: Any = None
        self._cancel = threading.Event()
        self._generating = threading.Event()
        super().__init__()

    def close(self) -> None:
        self._cancel.set()
        model, self._model = self._model, None
        if model is not None:
            model.close()

    def op_init_runtime(self, n_ctx: int | None = None, n_threads: int = 0) -> None:
        self._settings = {"n_ctx": n_ctx, "n_threads": n_threads or None}

    def op_load_model(self, path: str) -> dict[str, Any]:
        file = Path(path)
        settings = {key: value for key, value in self._settings.items() if value is not None}
        try:
            model = self._gpt4all.GPT4All(file.name, model_path=str(file.parent), allow_download=False,
                                          device="cpu", verbose=False, **settings)
        except FileNotFoundError as error:
            raise ModelUnavailable(str(error)) from error
        except RuntimeError as error:
            kind = UnsupportedModel if "Unsupported model architecture" in str(error) else InvalidModel
            raise kind(str(error)) from error
        self._model = model
        return {"n_ctx": settings.get("n_ctx")}

    def op_generate(self, prompt: str | list[int], max_tokens: int = 16, stop_at_eos: bool = True,
                    sampling: dict[str, Any] | None = None, on_token: TokenCallback | None = None) -> dict[str, Any]:
        model = self._require_model()
        if not isinstance(prompt, str):
            raise NoCounterpart("GPT4All.generate takes prompt text only, not token ids")
        if not stop_at_eos:
            raise NoCounterpart("GPT4All.generate always stops at an end-of-generation token")
        arguments = dict(_GREEDY) | {_SAMPLING_NAMES[name]: value for name, value in (sampling or {}).items()
                                     if name in _SAMPLING_NAMES}
        tokens: list[int] = []
        pieces: list[str] = []
        self._cancel.clear()
        self._generating.set()

        def receive(token_id: int, text: str) -> bool:
            tokens.append(int(token_id))
            pieces.append(text)
            if on_token is not None:
                on_token({"token_id": int(token_id), "text": text, "index": len(tokens) - 1})
            return not self._cancel.is_set()

        try:
            model.generate(prompt, max_tokens=max_tokens, callback=receive, **arguments)
        finally:
            self._generating.clear()
        text = "".join(pieces)
        if self._cancel.is_set():
            raise attach_partial_value(Cancelled(f"the callback stopped the generation after {len(tokens)} token(s)"),
                                       {"token_ids": tokens, "text": text, "finish_reason": FinishReason.cancelled})
        # The library does not say why it stopped: fewer tokens than asked means it met an EOG token.
        finish = FinishReason.length if len(tokens) >= max_tokens else FinishReason.stop
        return {"token_ids": tokens, "text": text, "finish_reason": finish}

    def op_free(self) -> None:
        if self._model is not None:
            self._model.close()

    def op_cancel(self) -> dict[str, bool]:
        running = self._generating.is_set()
        if running:
            self._cancel.set()
        return {"was_running": running}

    def _require_model(self) -> Any:
        if self._model is None:
            raise ModelNotLoaded("no GPT4All object has been created")
        return self._model


def _version() -> str:
    from importlib.metadata import version

    return version("gpt4all")


def make_adapter() -> Gpt4AllAdapter:
    return Gpt4AllAdapter()


# ─── inputs its backend reads ────────────────────────────────────────────────
#
# The kit's tiny fixtures declare the pre-tokenizer "smollm", which GPT4All's older llama.cpp does not know
# ("unknown pre-tokenizer type: 'smollm'"): it refuses them as it refuses SmolLM2. To judge its lifecycle
# as well, `python -m ggufsm.conformance.adapters.gpt4all DIR` writes the same fixtures with that one value
# rewritten in place to "refact" (a pre-tokenizer of the same length that it knows; the fixtures' text is
# plain words, which both split alike) and an inputs file naming them, for `conformance run --inputs`.

PRE_TOKENIZER_KEY = b"tokenizer.ggml.pre"
KIT_PRE_TOKENIZER, KNOWN_PRE_TOKENIZER = b"smollm", b"refact"
# Every input the suite loads and expects to read (the corrupt and missing ones are refused before that).
LOADED_MODELS = ("model", "alt_model", "unsupported_model", "overflow_model")


def rewrite_pre_tokenizer(path: Path) -> None:
    """Rewrite the file's tokenizer.ggml.pre value from "smollm" to "refact", in place (same length)."""
    data = bytearray(path.read_bytes())
    key = data.find(PRE_TOKENIZER_KEY)
    value = data.find(KIT_PRE_TOKENIZER, key)
    if key < 0 or value < 0 or value - key > len(PRE_TOKENIZER_KEY) + 16:
        raise ValueError(f"{path}: no tokenizer.ggml.pre = 'smollm' to rewrite")
    data[value:value + len(KIT_PRE_TOKENIZER)] = KNOWN_PRE_TOKENIZER
    path.write_bytes(bytes(data))


def write_inputs(directory: Path) -> Path:
    """The kit's default inputs in `directory`, its models' pre-tokenizer rewritten; returns the inputs file."""
    import json

    from ggufsm.conformance.inputs import prepare_inputs

    inputs = prepare_inputs(directory)
    for name in LOADED_MODELS:
        rewrite_pre_tokenizer(Path(getattr(inputs, name)))
    described = inputs.describe()
    for name in (*LOADED_MODELS, "corrupt_model", "missing_model"):
        described[name] = Path(described[name]).name
    target = directory / "inputs.json"
    target.write_text(json.dumps(described, indent=1) + "\n", encoding="utf-8")
    return target


if __name__ == "__main__":
    import sys

    print(write_inputs(Path(sys.argv[1])))
