"""A validated GGUF file's tensors in the form the numpy oracle needs.

`read_tensors(path)` opens the file through the C++ core (parsed and
validated: the architecture's declaration has checked every tensor's name and
shape, and the hyperparameters are resolved) and gives every tensor as raw
bytes plus its quantization type, zero-copy over the memory map;
`dense(name)` dequantizes one tensor to float32 with the `gguf` package's
numpy dequantizers, the project's dequantization oracle. Shapes are in numpy
order (rows, cols): a GGUF tensor with ne = [576, 1536] is a [1536, 576]
matrix.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from gguf import GGMLQuantizationType
from gguf.quants import dequantize

from ggufsm.reference.model.gguf_file import GgufFile, open_gguf
from ggufsm.spec.errors import InvalidModel, UnsupportedModel


@dataclass(frozen=True)
class RawTensor:
    name: str
    qtype: GGMLQuantizationType
    shape: tuple[int, ...]  # numpy order: (rows, cols) for a matrix, (n,) for a vector
    data: np.ndarray  # uint8 bytes of the tensor as stored in the file


@dataclass
class GgufTensors:
    file: GgufFile  # the validated file: the fused forward is built from it
    metadata: dict[str, Any]
    tensors: dict[str, RawTensor]

    @property
    def hyperparameters(self) -> dict[str, Any]:
        """The C++ core's validated hyperparameters (cpp/gguf/architecture.h), the oracle's as well."""
        return self.file.hyperparameters

    def has(self, name: str) -> bool:
        return name in self.tensors

    def dense(self, name: str) -> np.ndarray:
        """The tensor `name` dequantized to float32, shape `RawTensor.shape`."""
        if name not in self.tensors:
            raise InvalidModel(f"tensor {name!r} is missing from the model")
        raw = self.tensors[name]
        row_bytes = raw.data.size // max(1, int(np.prod(raw.shape[:-1])))
        try:
            values = dequantize(raw.data.reshape(-1, row_bytes), raw.qtype)
        except NotImplementedError as error:
            raise UnsupportedModel(f"tensor {name!r} has type {raw.qtype.name}, which the reference cannot dequantize") from error
        return np.ascontiguousarray(values, dtype=np.float32).reshape(raw.shape)


def tensors_from_gguf_file(gguf_file: GgufFile) -> GgufTensors:
    """The tensors of an opened `ggufsm.reference.model.gguf_file.GgufFile` (zero-copy bytes)."""
    tensors = {}
    for name, info in gguf_file.tensors.items():
        shape = tuple(int(n) for n in reversed(tuple(info.shape)))  # TensorInfo.shape is GGUF order (ne0 first)
        tensors[name] = RawTensor(name, GGMLQuantizationType(int(info.type)), shape, gguf_file.tensor_data(name).reshape(-1))
    return GgufTensors(gguf_file, dict(gguf_file.metadata), tensors)


def read_tensors(path: str | Path) -> GgufTensors:
    """Metadata, hyperparameters and raw tensors of the GGUF file at `path`."""
    return tensors_from_gguf_file(open_gguf(path))
