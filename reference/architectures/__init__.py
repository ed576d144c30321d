"""Architectures: the fused C++ engine and the readable numpy oracle of each, chosen by name."""

from ggufsm.reference.architectures.registry import (
    ENGINES,
    ORACLES,
    load,
    load_reference_model,
    load_tensors,
)

__all__ = ["ENGINES", "ORACLES", "load", "load_reference_model", "load_tensors"]
