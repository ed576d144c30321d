"""Architectures by name: each runs on the fused C++ forward, and has a readable numpy oracle.

What an architecture is (its hyperparameter keys, its tensors and their
shapes, the forward's switches) is declared once, in C++
(cpp/gguf/architectures.cpp; `_core.architectures()` shows the declarations).
The C++ core validates a file by its declaration and builds the fused forward
from that validated file (`engine="fused"`, the default). Python adds, per
architecture, the numpy oracle (`engine="numpy"`: llama.py, gemma3.py), which
reads the same validated hyperparameters and is tested equal to the fused
forward; it never feeds it. Adding an architecture: its declaration in C++,
and its oracle here in ORACLES.

Both engines give a model with n_ctx_train, nbytes, new_session(n_ctx) and
close(); its sessions have n_ctx, nbytes, prefill(tokens, start_pos) and
decode(token, pos) returning logits [n_vocab], and close().
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ggufsm.reference.model.gguf_file import GgufFile
from ggufsm.spec.errors import InvalidInput, UnsupportedModel

from . import gemma3, llama
from .fused import FusedModel
from .weights import GgufTensors, tensors_from_gguf_file

ENGINES = ("fused", "numpy")

# general.architecture -> its numpy oracle: (GgufTensors, activations=) -> model
ORACLES: dict[str, Callable[..., Any]] = {
    "llama": llama.LlamaModel.from_tensors,
    "gemma3": gemma3.Gemma3Model.from_tensors,
}


def load(gguf_file: GgufFile, *, n_threads: int, engine: str = "fused") -> Any:
    """The model the Runtime runs for an opened GGUF file (`ggufsm.reference.model.gguf_file.GgufFile`).

    engine "fused": the C++ forward over the file's memory map (n_threads
    workers, 0 = all cores); "numpy": the readable oracle (numpy's own
    threading; weights dequantized to float32).
    """
    if engine == "fused":
        return FusedModel(gguf_file, n_threads)
    return load_tensors(tensors_from_gguf_file(gguf_file), n_threads=n_threads, engine=engine)


def load_tensors(tensors: GgufTensors, *, n_threads: int = 0, engine: str = "fused") -> Any:
    """As `load`, over the tensors of an opened file (weights.read_tensors, tensors_from_gguf_file)."""
    if engine not in ENGINES:
        raise InvalidInput(f"engine is {engine!r}; one of {', '.join(ENGINES)}")
    if engine == "numpy":
        return load_reference_model(tensors)
    return FusedModel(tensors.file, n_threads)


def load_reference_model(tensors: GgufTensors, activations: str = "q8") -> Any:
    """The numpy oracle for a file's tensors, chosen by its architecture."""
    name = tensors.hyperparameters["architecture"]
    if name not in ORACLES:
        raise UnsupportedModel(f"architecture {name!r} has no numpy oracle (oracles: {', '.join(sorted(ORACLES))})")
    return ORACLES[name](tensors, activations=activations)
