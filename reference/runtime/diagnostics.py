"""diagnostics(): a snapshot of one handle, read without waiting for a running command.

Its shape is the conformance protocol's structured diagnostics (docs/protocol.md):
resident data, the installed model's identity (file name and sha256, beside
its summary), the open request's counters, last_error, sampling and config.
"""

from __future__ import annotations

import hashlib
import weakref
from dataclasses import asdict
from pathlib import Path

from ggufsm.reference.runtime.resident import Resident


def snapshot(resident: Resident, state: str, spec_version: str) -> dict:
    """State, resident data, model summary, context use, counters, timings, memory held."""
    model, session, request, config = resident.model, resident.session, resident.request, resident.config
    memory = dict(session.nbytes) if session is not None else {}
    # Read once: a free or replace on another thread may close the model meanwhile (queries take no lock).
    gguf = model.gguf if model is not None else None
    if gguf is not None:
        memory["model_mapped"] = gguf.file_size
    return {
        "spec_version": spec_version,
        "state": str(state),
        "resident": sorted(map(str, resident.present())),
        "config": asdict(config) if config else None,
        "threads": {"used": config.thread_count(), "note": config.thread_note()} if config else None,
        "sampling": asdict(resident.sampling),
        "model": {**model.summary, **_identity(resident, model)} if model else None,
        "context": {"n_ctx": session.n_ctx if session else None, "used": request.n_past if request else 0},
        "request": request.counters() if request else None,
        "counters": dict(resident.counters),
        "timings": dict(resident.timings),
        "memory": {**memory, "total": sum(memory.values())},
        "last_error": resident.last_error.to_dict() if resident.last_error else None,
    }


def _identity(resident: Resident, model) -> dict:
    """The model's file name and sha256, hashed once per installed model (the handle keeps the last one,
    weakly: a released model is not kept alive by it)."""
    cached = resident.identity
    if cached is not None and cached[0]() is model:
        return cached[1]
    gguf = model.gguf   # None once a free or replace on another thread closed the model
    path = gguf.path if gguf is not None else None
    if path is None:   # a model given as bytes has no file (or a closing one no longer names it)
        return {"file": model.source, "sha256": None}
    try:
        with open(path, "rb") as file:
            identity = {"file": Path(path).name, "sha256": hashlib.file_digest(file, "sha256").hexdigest()}
    except OSError:   # the file went after the load: a query still answers
        return {"file": Path(path).name, "sha256": None}
    resident.identity = (weakref.ref(model), identity)
    return identity
