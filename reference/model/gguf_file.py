"""A validated GGUF file: metadata, tensor infos and zero-copy tensor data.

`open_gguf(path_or_bytes)` memory-maps (or borrows) the bytes, parses and
validates them in the C++ core with the GIL released, and returns a
`GgufFile`. A malformed file raises `InvalidModel`, a well-formed one this
runtime cannot run raises `UnsupportedModel`, and a path that cannot be read
raises `ModelUnavailable`; every message names the field or tensor and the
byte offset.

Opening a file that is already open shares it: the C++ core keeps one cache
of validated files, keyed by device, inode, mtime and size, and returns the
same `_core.GgufModel` (the same map, parse and validated hyperparameters)
while any holder keeps it. What Python derives from a file (its metadata
dict, tensor infos, tokenizer) hangs off that core object (`shared`), so
several handles on one model cost its pages and its Python objects once.
Tensor data views keep the map alive after `close()`.

Metadata is served lazily (`Metadata`): the C++ core keeps the validated copy
of the file's header (its bytes once, never re-read from the mapping), and a
value becomes a Python object only when asked for, each time. A dict of every
value as Python objects cost about 9 times the header's bytes (49,152 token
strings are 49,152 objects); the copy costs 1 time.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, NamedTuple, TypeVar

import numpy as np
from gguf import GGMLQuantizationType

from ggufsm import _core
from ggufsm.spec.errors import InvalidInput, InvalidState, ModelUnavailable

BytesLike = bytes | bytearray | memoryview
T = TypeVar("T")
_DERIVED = "_ggufsm_derived"  # the attribute of a _core.GgufModel that holds what Python derives from it


class TensorInfo(NamedTuple):
    name: str
    type: GGMLQuantizationType  # an IntEnum: the ggml type id
    shape: tuple[int, ...]  # GGUF order: shape[0] (ne0) is the contiguous row dimension, as gguf.GGUFReader reports it
    offset: int             # absolute byte offset of the data in the file
    nbytes: int


class GgufFile:
    """One parsed, validated GGUF file. Use as a context manager or call close()."""

    def __init__(self, model: _core.GgufModel, path: Path | None):
        self._model: _core.GgufModel | None = model
        self.path: Path | None = path  # None for a model opened from bytes
        self.source: str = model.source
        self.version: int = model.version
        self.alignment: int = model.alignment
        self.data_offset: int = model.data_offset
        self.file_size: int = model.file_size
        self.architecture: str = model.architecture
        self.metadata: Mapping[str, Any] = self.shared("metadata", lambda: Metadata(model))
        self.hyperparameters: dict[str, Any] = self.shared("hyperparameters", model.hyperparameters)
        self.tensors: OrderedDict[str, TensorInfo]
        self._index: dict[str, int]
        self.tensors, self._index = self.shared("tensors", lambda: _tensor_table(model))

    @property
    def core(self) -> _core.GgufModel:
        """The validated file in the C++ core, which the forward is built from; one per file while held."""
        if self._model is None:
            raise InvalidState(f"{self.source} is closed")
        return self._model

    def shared(self, name: str, build: Callable[[], T]) -> T:
        """What Python derives from this file, built once per core object and shared by every open of the file."""
        derived = getattr(self.core, _DERIVED, None)
        if derived is None:
            # One attribute named by a constant: a name string made per call would be kept alive by the
            # interpreter's attribute caches, and each such survivor pins a 1 MiB allocator arena.
            derived = {}
            setattr(self.core, _DERIVED, derived)
        if name not in derived:
            derived.setdefault(name, build())  # two threads may both build: the first stored is kept
        return derived[name]

    def tensor_data(self, name: str) -> np.ndarray:
        """The tensor's bytes as a read-only uint8 array [n_bytes] over the mapping (no copy)."""
        if self._model is None:
            raise InvalidState(f"tensor_data({name!r}) on a closed GGUF file ({self.source})")
        if name not in self._index:
            raise InvalidInput(f"no tensor {name!r} in {self.source} ({len(self.tensors)} tensors)")
        return self._model.tensor_data(self._index[name])

    @property
    def closed(self) -> bool:
        return self._model is None

    def close(self) -> None:
        """Drop this file's hold on the bytes; views already handed out keep them alive, and so does a
        forward built from `core` or another open of the same file."""
        self._model = None

    def __enter__(self) -> GgufFile:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self.closed else f"{len(self.tensors)} tensors"
        return f"<GgufFile {self.source} {self.architecture} v{self.version} {state}>"


class Metadata(Mapping[str, Any]):
    """A file's metadata, read-only, in file order: each value converted from the validated header copy
    when asked for (not kept), so holding it costs the keys, not a Python object per array element."""

    def __init__(self, model: _core.GgufModel):
        self._model = model
        self._keys: tuple[str, ...] = tuple(model.metadata_keys())
        self._known = frozenset(self._keys)

    def __getitem__(self, key: str) -> Any:
        if key not in self._known:
            raise KeyError(key)
        return self._model.metadata_value(key)

    def __contains__(self, key: object) -> bool:
        return key in self._known

    def __iter__(self) -> Iterator[str]:
        return iter(self._keys)

    def __len__(self) -> int:
        return len(self._keys)

    def numeric_array(self, key: str) -> np.ndarray | None:
        """An array of numbers as a numpy array of the file's element type (a copy, at C speed), or None
        when the value is not one (strings, booleans, nested arrays, a scalar)."""
        if key not in self._known:
            raise KeyError(key)
        return self._model.metadata_array(key)

    def string_table(self, key: str, *, keep_first: bool = False, name_empty: bool = False) -> _core.StringTable | None:
        """An array of strings as a core table (one buffer and an index, read from the header copy, no Python
        str per entry; the tokenizer's vocabulary and merges), or None when the value is not one."""
        if key not in self._known:
            raise KeyError(key)
        return _core.string_table_from_file(self._model, key, keep_first, name_empty)

    def __repr__(self) -> str:
        return f"<Metadata {len(self)} keys>"


def _tensor_table(model: _core.GgufModel) -> tuple[OrderedDict[str, TensorInfo], dict[str, int]]:
    tensors: OrderedDict[str, TensorInfo] = OrderedDict()
    index: dict[str, int] = {}
    for position, (name, type_id, shape, offset, nbytes) in enumerate(model.tensor_infos()):
        tensors[name] = TensorInfo(name, GGMLQuantizationType(type_id), shape, offset, nbytes)
        index[name] = position
    return tensors, index


def immutable_bytes(source: BytesLike) -> bytes | memoryview:
    """Bytes nobody can change under the parse or the forward: `bytes` (or a read-only view of them) as
    they are; anything else copied once. A bytearray can be written after the load; a memoryview of an
    mmap reads a file that another process can rewrite or truncate (a truncation is SIGBUS in the forward,
    and no descriptor of ours can watch that file as the path loads do). The copy costs the model's size in
    private memory and a memcpy (docs/reliability.md, "Model files")."""
    if isinstance(source, bytes):
        return source
    if isinstance(source, memoryview) and source.readonly and isinstance(source.obj, bytes) and source.c_contiguous:
        return source
    return bytes(source)


def open_gguf(source: str | os.PathLike | BytesLike) -> GgufFile:
    """Parse and validate a GGUF model from a path or from bytes in memory."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        return GgufFile(_core.open_gguf_buffer(immutable_bytes(source)), None)
    if isinstance(source, (str, Path)) or hasattr(source, "__fspath__"):
        path = os.fspath(source)
        if not isinstance(path, str):
            path = os.fsdecode(path)
        if "\0" in path:
            raise ModelUnavailable(f"no model file: the path contains a NUL character: {path!r}")
        return GgufFile(_core.open_gguf_path(path), Path(path))
    raise InvalidInput(f"a model source is a path or bytes, not {type(source).__name__}")
