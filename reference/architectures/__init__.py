"""Architectures: the fused C++ engine and the readable numpy oracle of each, chosen by name."""

from ggufsm.reference.architectures.registry import (
    ARCHITECTURES,
    ENGINES,
    Architecture,
    architecture_for,
    load,
    load_reference_model,
    load_tensors,
)

__all__ = ["ARCHITECTURES", "ENGINES", "Architecture", "architecture_for", "load", "load_reference_model", "load_tensors"]
