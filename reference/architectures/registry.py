"""Architectures by name: `general.architecture` -> how to build its forward.

Each architecture has a readable numpy forward (the reference) and runs on the
fused C++ forward (`engine="fused"`, the default) through its hyperparameters.
A new architecture plugs in by adding one entry: its module gives a model
class with `from_tensors(GgufTensors)` (the numpy reference),
`hparams_from_metadata(metadata, n_vocab)` and `fused_hparams(hp)` (the
switches of cpp/include/ggufsm/forward_llama.h).

Both engines give a model with n_ctx_train, nbytes, new_session(n_ctx) and
close(); its sessions have n_ctx, nbytes, prefill(tokens, start_pos) and
decode(token, pos) returning logits [n_vocab], and close().
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping

from ggufsm.spec.errors import InvalidInput, InvalidModel, UnsupportedModel

from . import gemma3, llama
from .weights import GgufTensors, tensors_from_gguf_file

ENGINES = ("fused", "numpy")


@dataclass(frozen=True)
class Architecture:
    name: str
    load_reference: Callable[..., Any]  # (GgufTensors, activations=) -> numpy model
    hparams_from_metadata: Callable[[Mapping[str, Any], int], Any]  # (metadata, n_vocab) -> hparams
    fused_hparams: Callable[[Any], dict]  # hparams -> the fused forward's switches


ARCHITECTURES: dict[str, Architecture] = {
    "llama": Architecture("llama", llama.LlamaModel.from_tensors, llama.hparams_from_metadata, llama.fused_hparams),
    "gemma3": Architecture("gemma3", gemma3.Gemma3Model.from_tensors, gemma3.hparams_from_metadata, gemma3.fused_hparams),
}


def architecture_for(metadata: Mapping[str, Any]) -> Architecture:
    """The registered architecture that `general.architecture` names."""
    if "general.architecture" not in metadata:
        raise InvalidModel("metadata key 'general.architecture' is missing")
    name = metadata["general.architecture"]
    if name not in ARCHITECTURES:
        raise UnsupportedModel(f"general.architecture is {name!r}; supported: {sorted(ARCHITECTURES)}")
    return ARCHITECTURES[name]


def load(gguf_file: Any, *, n_threads: int, engine: str = "fused") -> Any:
    """The model the Runtime runs for an opened GGUF file (`ggufsm.reference.model.gguf_file.GgufFile`).

    engine "fused": the C++ forward over the file's memory map (n_threads
    workers, 0 = all cores); "numpy": the readable reference (numpy's own
    threading; weights dequantized to float32).
    """
    return load_tensors(tensors_from_gguf_file(gguf_file), n_threads=n_threads, engine=engine)


def load_tensors(tensors: GgufTensors, *, n_threads: int = 0, engine: str = "fused") -> Any:
    """As `load`, over tensors read any way (weights.read_tensors, tensors_from_gguf_file)."""
    if engine not in ENGINES:
        raise InvalidInput(f"engine is {engine!r}; one of {', '.join(ENGINES)}")
    if engine == "numpy":
        return load_reference_model(tensors)
    from .fused import FusedModel  # imports the C++ core only when it is used

    architecture = architecture_for(tensors.metadata)
    hp = architecture.hparams_from_metadata(tensors.metadata, llama.embedding_rows(tensors))
    return FusedModel(hp, architecture.fused_hparams(hp), tensors, n_threads)


def load_reference_model(tensors: GgufTensors, activations: str = "q8") -> Any:
    """The reference (numpy) model for a file's tensors, chosen by its architecture."""
    return architecture_for(tensors.metadata).load_reference(tensors, activations=activations)
