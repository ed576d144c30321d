"""Everything a load produces, built off to the side before anything is installed.

`build_loaded_model` opens the file (parsed and validated in the C++ core,
or shared with the handles that hold the same file: gguf_file.py), builds or
shares its tokenizer, then the architecture's forward; the runtime adds the
session (KV cache, scratch, logits). Only when all of that succeeded does the
runtime install the result; any failure raises the table's named error and
leaves nothing behind.

Handles that load one file share it: llama.cpp splits a model (weights,
vocabulary) from its contexts so that many contexts share one copy; here
every Runtime is a handle of its own, so the sharing happens underneath, in
the C++ core's one cache of open files. The first load of a file maps,
validates and builds its tokenizer; later loads of the same file (same
device, inode, size and modification time) while some handle still holds it
take another reference; the last holder to let go drops the map. The forward
is shared the same way, per file and thread count
(architectures/shared_forward.py), so that handles generating at once can
batch their decode steps; each handle has its own session. Measured on SmolLM2
(tests/runtime/test_memory.py): without sharing, each extra handle added
~35 MiB of RSS (its own map's pages and ~25 MiB of metadata and tokenizer
objects); with it, only its session. Models given as bytes are never shared.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ggufsm import _core
from ggufsm.reference import architectures
from ggufsm.reference.model.finite_weights import check_finite_weights
from ggufsm.reference.model.gguf_file import GgufFile, open_gguf
from ggufsm.reference.tokenizers.tokenizer import tokenizer_from_metadata
from ggufsm.spec.errors import InvalidInput


@dataclass
class LoadedModel:
    source: str                   # the path, or "<N bytes>" for an in-memory model
    gguf: GgufFile | None         # the validated file; keeps the memory map alive while the weights point into it
    weights: Any                  # the architecture's model (see architectures/registry.py)
    summary: dict = field(default_factory=dict)

    @property
    def file(self) -> _core.GgufModel | None:
        """The validated file in the C++ core: the same object for every handle holding the same file."""
        return self.gguf.core if self.gguf is not None else None

    @property
    def tokenizer(self) -> Any:   # ggufsm.reference.tokenizers.tokenizer.Tokenizer
        return shared_tokenizer(self.gguf)

    def file_changed(self) -> str:
        """Why the model's file can no longer be trusted (changed on disk after it was loaded), or ""."""
        return self.gguf.core.changed() if self.gguf is not None else ""

    def check_token_ids(self, tokens) -> None:
        """InvalidInput unless every token is an integer id of this model's vocabulary: the C++ core's one
        rule (cpp/forward/forward.h, check_token_ids), which every prefill and decode applies as well."""
        self.weights.check_token_ids(tokens)

    def close(self) -> None:
        release = getattr(self.weights, "close", None)
        if release is not None:
            release()
        self.gguf = None   # the last model holding the file closes it


def shared_tokenizer(gguf: GgufFile) -> Any:
    """The file's tokenizer, built once and shared by every handle on the file."""
    return gguf.shared("tokenizer", lambda: tokenizer_from_metadata(gguf.metadata))


def describe_source(source: str | Path | bytes | bytearray | memoryview) -> str:
    if isinstance(source, (bytes, bytearray, memoryview)):
        return f"<{len(source)} bytes>"
    return str(source)


def validate_model_file(source) -> GgufFile:
    """The one validation a model file goes through, for `ggufsm inspect`, and for `load_model` as
    build_loaded_model runs it (the same checks in the same order, the forward's inside its full build), so
    that they agree on every file: the C++ core's container and declaration checks (open_gguf), then the
    tokenizer's (built and shared, as a load does) and the forward's. Raises the first problem's named error."""
    gguf = open_gguf(source)
    try:
        shared_tokenizer(gguf)
        # The forward's own checks (F32 norms, matrix types the kernels run): built on one thread, so no
        # worker is started, without the repack (every check comes before it; repacking here, on one
        # thread, into a copy dropped at once, cost 0.2-0.5 s of every load), and dropped. Raised here, in
        # a frame that lets go of the file (not from inside the shared forward's build, whose frames hold it).
        _core.LlamaModel(gguf.core, 1, repack=False)
    except BaseException:
        gguf.close()
        del gguf
        raise
    return gguf


def build_loaded_model(source, *, n_threads: int) -> LoadedModel:
    """The checks of validate_model_file in its order (the container, the tokenizer, the forward's), with the
    forward built on a thread of its own while the tokenizer is built here: the forward's build (its checks,
    then the repack, whose first touch of fresh pages is most of its variance) keeps the second core busy
    through the tokenizer's single-threaded ~20 ms. The tokenizer's error still comes first, as in
    validate_model_file; a forward built beside a failed tokenizer is given back before the error leaves."""
    if not isinstance(source, (str, Path, bytes, bytearray, memoryview)):
        raise InvalidInput(f"model source must be a path or bytes, not {type(source).__name__}")
    gguf = open_gguf(source)
    try:
        forward = BuiltBeside(architectures.load, gguf, n_threads=n_threads)
        try:
            tokenizer = shared_tokenizer(gguf)
        except BaseException:
            forward.discard()
            raise
        weights = forward.result()
    except BaseException as error:
        # The error (kept as last_error) holds this frame through its traceback: drop the file from it,
        # and the deeper frames of the forward's build (which hold it too), so a failed load holds no map.
        gguf.close()
        del gguf
        if error.__traceback__ is not None:
            error.__traceback__.tb_next = None
        raise
    summary = {
        "source": describe_source(source),
        "architecture": gguf.architecture,
        "name": gguf.metadata.get("general.name"),
        "file_size": gguf.file_size,
        "n_tensors": len(gguf.tensors),
        "n_vocab": tokenizer.vocab_size,
        "n_ctx_train": weights.n_ctx_train,
        "tensor_types": _count_tensor_types(gguf),
    }
    return LoadedModel(describe_source(source), gguf, weights, summary)


class BuiltBeside:
    """build(*args, **kwargs) run on a thread of its own from now: result() waits for it and returns its
    value or raises its error; discard() waits for it and closes what it built."""

    def __init__(self, build: Callable[..., Any], *args: Any, **kwargs: Any):
        self._value: Any = None
        self._error: BaseException | None = None

        def run() -> None:
            try:
                self._value = build(*args, **kwargs)
            except BaseException as error:  # noqa: BLE001 - handed to result(), in the caller's thread
                self._error = error

        self._thread = threading.Thread(target=run, name="ggufsm-load-forward")
        self._thread.start()

    def result(self) -> Any:
        self._thread.join()
        error, self._error = self._error, None
        if error is not None:
            raise error
        return self._value

    def discard(self) -> None:
        self._thread.join()
        value, self._value, self._error = self._value, None, None
        close = getattr(value, "close", None)
        if close is not None:
            close()


def check_finite_weights_once(gguf: GgufFile, checked: Mapping[int, int | None] | None = None) -> None:
    """InvalidModel unless every weight is finite; checked once per file (shared with its other handles).
    checked: the verdicts the forward's build already made (finite_weights.check_finite_weights)."""

    def checked_now() -> bool:
        check_finite_weights(gguf, checked)
        return True

    gguf.shared("weights_finite", checked_now)


def _count_tensor_types(gguf: GgufFile) -> dict[str, int]:
    counts: dict[str, int] = {}
    for info in gguf.tensors.values():
        name = getattr(info.type, "name", str(info.type))
        counts[name] = counts.get(name, 0) + 1
    return counts
