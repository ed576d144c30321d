"""One fused forward per model in the process: handles on one file share its `_core.LlamaModel`.

A `_core.LlamaModel` is the forward over one validated file: views of its
weights (or, with a repacked or huge-page layout, the copy made at load), the
worker pool, and the hyperparameters. Every handle that loads the same file
with the same load options gets the same one, with its `DecodeScheduler`
(reference/runtime/batching.py), so that the decode steps of handles
generating at once can run as one pass over the weights; each handle still has
its own session (KV cache, scratch, logits).

The key is the file's identity and the options that change what the model
holds: the C++ core's open-file cache returns one `_core.GgufModel` per
(device, inode, size, mtime) while anyone holds it (gguf_file.py), so that
object *is* the file's identity here (never re-statted, so never racing the
mapping), and the thread count (the pool the forward runs on). A model given as
bytes gets a file object of its own, so it is never shared.

Reference counted: `acquire` takes a `Lease`, `Lease.release` gives it back,
and the last lease released drops the registry's hold (sessions still open keep
the C++ model alive until they close). A build that fails registers nothing, so
a failed load never touches a model others use. A file changed under a shared
model is caught where it always was: every prefill and decode checks the
mapping (cpp/forward), so each sharer's next step is its own ModelUnavailable;
a later load of the changed file has a new identity and builds a new model.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

from ggufsm import _core


@dataclass(eq=False)
class _Entry:
    key: tuple[int, int]
    file: Any        # _core.GgufModel: held, so that id(file) in the key cannot be reused while the entry lives
    model: Any       # _core.LlamaModel
    scheduler: Any   # reference.runtime.batching.DecodeScheduler over `model`
    leases: int = 0


@dataclass(eq=False)
class Lease:
    """One holder's share of a model; release() is idempotent."""

    _entry: _Entry | None = field(repr=False)

    @property
    def model(self) -> Any:
        assert self._entry is not None, "a released lease holds no model"
        return self._entry.model

    @property
    def scheduler(self) -> Any:
        assert self._entry is not None, "a released lease holds no model"
        return self._entry.scheduler

    def release(self) -> None:
        entry, self._entry = self._entry, None
        if entry is not None:
            _REGISTRY.release(entry)


class SharedForwards:
    """The process's registry: (file, n_threads) -> the model and its scheduler, while leased."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: dict[tuple[int, int], _Entry] = {}

    def acquire(self, file: Any, n_threads: int) -> Lease:
        """A lease on the model of `file` (a _core.GgufModel) at n_threads, built on first use. The build runs
        outside the lock (a load never holds up another handle's free); raises the build's named error, and
        then nothing was registered."""
        key = (id(file), n_threads)
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None:
                entry.leases += 1
                return Lease(entry)
        model = _core.LlamaModel(file, n_threads)
        # Imported here, not at the top (the runtime imports this module), and after the build: a load builds
        # the forward on a thread beside the tokenizer's (model/loaded_model.py), and the C++ build, which
        # releases the GIL, starts before an import that would wait for the GIL.
        from ggufsm.reference.runtime.batching import DecodeScheduler

        scheduler = DecodeScheduler(model)
        with self._lock:
            # Two first loads at once both build; the first registered is kept, the other dropped unused.
            entry = self._entries.setdefault(key, _Entry(key, file, model, scheduler))
            entry.leases += 1
            return Lease(entry)

    def release(self, entry: _Entry) -> None:
        with self._lock:
            entry.leases -= 1
            if entry.leases == 0 and self._entries.get(entry.key) is entry:
                del self._entries[entry.key]

    def held(self) -> dict[tuple[int, int], int]:
        """Leases per registered model (tests, diagnostics)."""
        with self._lock:
            return {key: entry.leases for key, entry in self._entries.items()}


_REGISTRY = SharedForwards()


def acquire(file: Any, n_threads: int) -> Lease:
    return _REGISTRY.acquire(file, n_threads)


def held() -> dict[tuple[int, int], int]:
    return _REGISTRY.held()
