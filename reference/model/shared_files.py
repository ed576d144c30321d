"""Runtimes that load one file share its memory map, metadata and tokenizer.

llama.cpp splits a model (weights, vocabulary) from its contexts so that many
contexts share one copy; here every Runtime is a handle of its own, so the
sharing happens underneath: the first load of a file maps, validates and
builds its tokenizer, later loads of the same file (same device, inode, size
and modification time) while some handle still holds it take another
reference, and the last holder to let go drops the map. Each handle still builds its own forward (a thin set of views and a
thread pool sized by its own config) and its own session.

Measured on SmolLM2 (tests/runtime/test_memory.py): without sharing, each
extra handle added ~35 MiB of RSS (its own map's pages and ~25 MiB of
metadata and tokenizer objects); with it, only its session.

Models given as bytes are never shared: their identity is their buffer.
"""

from __future__ import annotations

import os
import threading
import weakref
from dataclasses import dataclass
from typing import Any

from ggufsm.reference.model.gguf_file import GgufFile, open_gguf
from ggufsm.reference.tokenizers.tokenizer import tokenizer_from_metadata

FileIdentity = tuple[int, int, int, int]   # st_dev, st_ino, st_size, st_mtime_ns


@dataclass(eq=False)
class SharedFile:
    """One validated GGUF file and its tokenizer; alive while a loaded model holds it."""

    gguf: GgufFile
    tokenizer: Any
    identity: FileIdentity | None      # None: bytes, or a file that changed while it was opened


# Weak values: a file stays open exactly as long as some handle's model holds it, so a runtime dropped
# without free() lets its file go too; CPython's reference counting closes it at the last release.
_lock = threading.Lock()
_open_files: weakref.WeakValueDictionary[FileIdentity, SharedFile] = weakref.WeakValueDictionary()


def acquire(source) -> SharedFile:
    """The shared file for `source`, opened (parsed, validated, tokenizer built) if no handle holds it."""
    identity = _identity(source)
    if identity is not None:
        with _lock:
            shared = _open_files.get(identity)
        if shared is not None:
            return shared
    # Opened outside the lock: validating a large file must not stall other handles' loads.
    gguf = open_gguf(source)
    try:
        tokenizer = tokenizer_from_metadata(gguf.metadata)
    except BaseException:
        gguf.close()
        raise
    if identity is not None and _identity(source) != identity:
        identity = None   # rewritten while we read it: this copy is private to the handle
    shared = SharedFile(gguf, tokenizer, identity)
    if identity is None:
        return shared
    with _lock:
        # another handle may have opened it meanwhile: keep one copy
        return _open_files.setdefault(identity, shared)


def open_file_count() -> int:
    """How many distinct files are held open for sharing (diagnostics, tests)."""
    with _lock:
        return len(_open_files)


def _identity(source) -> FileIdentity | None:
    if isinstance(source, (bytes, bytearray, memoryview)):
        return None
    try:
        status = os.stat(source)
    except (OSError, TypeError, ValueError):
        return None   # open_gguf names the problem
    return status.st_dev, status.st_ino, status.st_size, status.st_mtime_ns
