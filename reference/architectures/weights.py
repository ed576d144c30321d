"""A GGUF file's metadata and tensors in the form the numpy reference forward needs.

`read_tensors(path)` gives the metadata as a plain dict (key -> Python value)
and every tensor as raw bytes plus its quantization type; `dense(name)`
dequantizes one tensor to float32 with the `gguf` package's numpy
dequantizers, the project's dequantization oracle. Shapes are in numpy order
(rows, cols): a GGUF tensor with ne = [576, 1536] is a [1536, 576] matrix.

The reading goes through `gguf.GGUFReader` (about 2.5 s on SmolLM2); this is
the reference path, where clarity beats load time. The fused C++ forward
reads the same bytes zero-copy through `ggufsm.reference.model.gguf_file`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from gguf import GGMLQuantizationType, GGUFReader
from gguf.quants import dequantize

from ggufsm.spec.errors import InvalidModel, ModelUnavailable, UnsupportedModel


@dataclass(frozen=True)
class RawTensor:
    name: str
    qtype: GGMLQuantizationType
    shape: tuple[int, ...]  # numpy order: (rows, cols) for a matrix, (n,) for a vector
    data: np.ndarray  # uint8 bytes of the tensor as stored in the file


@dataclass
class GgufTensors:
    metadata: dict[str, Any]
    tensors: dict[str, RawTensor]

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


def tensors_from_gguf_file(gguf_file: Any) -> GgufTensors:
    """The same view over an opened `ggufsm.reference.model.gguf_file.GgufFile` (zero-copy bytes)."""
    tensors = {}
    for name, info in gguf_file.tensors.items():
        shape = tuple(int(n) for n in reversed(tuple(info.shape)))  # TensorInfo.shape is GGUF order (ne0 first)
        tensors[name] = RawTensor(name, GGMLQuantizationType(int(info.type)), shape, gguf_file.tensor_data(name).reshape(-1))
    return GgufTensors(dict(gguf_file.metadata), tensors)


def read_tensors(path: str | Path) -> GgufTensors:
    """Metadata and raw tensors of the GGUF file at `path`."""
    path = Path(path)
    if not path.is_file():
        raise ModelUnavailable(f"no model file at {str(path)!r}")
    try:
        reader = GGUFReader(path)
    except (ValueError, IndexError, KeyError) as error:
        raise InvalidModel(f"{str(path)!r} is not a readable GGUF file: {error}") from error
    metadata = {name: field.contents() for name, field in reader.fields.items() if not name.startswith("GGUF.")}
    tensors = {}
    for tensor in reader.tensors:
        shape = tuple(int(n) for n in reversed(tensor.shape.tolist()))
        tensors[tensor.name] = RawTensor(tensor.name, tensor.tensor_type, shape, tensor.data.view(np.uint8).reshape(-1))
    return GgufTensors(metadata, tensors)
