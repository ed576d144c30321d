"""Everything a load produces, built off to the side before anything is installed.

`build_loaded_model` parses and validates the bytes, builds the tokenizer and
the architecture's weights, and allocates the session (KV cache, scratch,
logits). Only when all of that succeeded does the runtime install the result;
any failure raises the table's named error and leaves nothing behind.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ggufsm.reference import architectures
from ggufsm.reference.gguf_file import GgufFile, open_gguf
from ggufsm.reference.tokenizer import tokenizer_from_metadata
from ggufsm.spec.errors import InvalidInput


@dataclass
class LoadedModel:
    source: str                   # the path, or "<bytes>" for an in-memory model
    gguf: GgufFile                # keeps the memory map alive while the weights point into it
    tokenizer: Any                # ggufsm.reference.tokenizer.Tokenizer
    weights: Any                  # the architecture's model (see architectures.py)
    summary: dict = field(default_factory=dict)

    def close(self) -> None:
        release = getattr(self.weights, "close", None)
        if release is not None:
            release()
        self.gguf.close()


def describe_source(source: str | Path | bytes | bytearray | memoryview) -> str:
    if isinstance(source, (bytes, bytearray, memoryview)):
        return f"<{len(source)} bytes>"
    return str(source)


def build_loaded_model(source, *, n_threads: int) -> LoadedModel:
    if not isinstance(source, (str, Path, bytes, bytearray, memoryview)):
        raise InvalidInput(f"model source must be a path or bytes, not {type(source).__name__}")
    gguf = open_gguf(source)
    try:
        tokenizer = tokenizer_from_metadata(gguf.metadata)
        weights = architectures.load(gguf, n_threads=n_threads)
    except BaseException:
        gguf.close()
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
    return LoadedModel(describe_source(source), gguf, tokenizer, weights, summary)


def _count_tensor_types(gguf: GgufFile) -> dict[str, int]:
    counts: dict[str, int] = {}
    for info in gguf.tensors.values():
        name = getattr(info.type, "name", str(info.type))
        counts[name] = counts.get(name, 0) + 1
    return counts
