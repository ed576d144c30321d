"""Architectures by name: `general.architecture` -> how to build the reference forward.

A new architecture (gemma3 next) plugs in by adding one entry: its module
provides a model class with `from_tensors(GgufTensors)` and `new_session(n_ctx)`
whose sessions have `prefill(tokens, start_pos)` and `decode(token, pos)`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping

from ggufsm.spec.errors import InvalidModel, UnsupportedModel

from . import llama
from .weights import GgufTensors, tensors_from_gguf_file


@dataclass(frozen=True)
class Architecture:
    name: str
    load_reference: Callable[[GgufTensors], Any]  # -> a model with new_session(n_ctx)


ARCHITECTURES: dict[str, Architecture] = {
    "llama": Architecture("llama", llama.LlamaModel.from_tensors),
}


def architecture_for(metadata: Mapping[str, Any]) -> Architecture:
    """The registered architecture that `general.architecture` names."""
    if "general.architecture" not in metadata:
        raise InvalidModel("metadata key 'general.architecture' is missing")
    name = metadata["general.architecture"]
    if name not in ARCHITECTURES:
        raise UnsupportedModel(f"general.architecture is {name!r}; supported: {sorted(ARCHITECTURES)}")
    return ARCHITECTURES[name]


def load(gguf_file: Any, *, n_threads: int) -> Any:
    """The model the Runtime runs for an opened GGUF file: has n_ctx_train, new_session(n_ctx), close().

    Sessions have n_ctx, nbytes, prefill(tokens, start_pos), decode(token, pos), close().
    """
    del n_threads  # the numpy reference uses numpy's own threading
    return load_reference_model(tensors_from_gguf_file(gguf_file))


def load_reference_model(tensors: GgufTensors) -> Any:
    """The reference (numpy) model for a file's tensors, chosen by its architecture."""
    return architecture_for(tensors.metadata).load_reference(tensors)
