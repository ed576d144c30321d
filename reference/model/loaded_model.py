"""Everything a load produces, built off to the side before anything is installed.

`build_loaded_model` parses and validates the bytes and builds the tokenizer
(or shares both with handles that loaded the same file, see shared_files.py),
then the architecture's weights; the runtime adds the session (KV cache,
scratch, logits). Only when all of that succeeded does the runtime install the
result; any failure raises the table's named error and leaves nothing behind.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ggufsm.reference import architectures
from ggufsm.reference.model import shared_files
from ggufsm.reference.model.gguf_file import GgufFile
from ggufsm.spec.errors import InvalidInput


@dataclass
class LoadedModel:
    source: str                   # the path, or "<bytes>" for an in-memory model
    file: shared_files.SharedFile | None  # keeps the memory map alive while the weights point into it
    weights: Any                  # the architecture's model (see architectures.py)
    summary: dict = field(default_factory=dict)

    @property
    def gguf(self) -> GgufFile:
        return self.file.gguf

    @property
    def tokenizer(self) -> Any:   # ggufsm.reference.tokenizers.tokenizer.Tokenizer
        return self.file.tokenizer

    def close(self) -> None:
        release = getattr(self.weights, "close", None)
        if release is not None:
            release()
        self.file = None   # the last model holding the file closes it


def describe_source(source: str | Path | bytes | bytearray | memoryview) -> str:
    if isinstance(source, (bytes, bytearray, memoryview)):
        return f"<{len(source)} bytes>"
    return str(source)


def build_loaded_model(source, *, n_threads: int) -> LoadedModel:
    if not isinstance(source, (str, Path, bytes, bytearray, memoryview)):
        raise InvalidInput(f"model source must be a path or bytes, not {type(source).__name__}")
    file = shared_files.acquire(source)
    gguf, tokenizer = file.gguf, file.tokenizer
    try:
        weights = architectures.load(gguf, n_threads=n_threads)
    except BaseException:
        # The error (kept as last_error) holds this frame through its traceback: drop the file from it,
        # so that a failed load holds no map.
        del file, gguf, tokenizer
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
    return LoadedModel(describe_source(source), file, weights, summary)


def _count_tensor_types(gguf: GgufFile) -> dict[str, int]:
    counts: dict[str, int] = {}
    for info in gguf.tensors.values():
        name = getattr(info.type, "name", str(info.type))
        counts[name] = counts.get(name, 0) + 1
    return counts
