"""diagnostics(): a snapshot of one handle, read without waiting for a running command."""

from __future__ import annotations

from dataclasses import asdict

from ggufsm.reference.runtime.resident import Resident


def snapshot(resident: Resident, state: str, spec_version: str) -> dict:
    """State, resident data, model summary, context use, counters, timings, memory held."""
    model, session, request, config = resident.model, resident.session, resident.request, resident.config
    memory = dict(session.nbytes) if session is not None else {}
    if model is not None:
        memory["model_mapped"] = model.gguf.file_size
    return {
        "spec_version": spec_version,
        "state": str(state),
        "resident": sorted(map(str, resident.present())),
        "config": asdict(config) if config else None,
        "sampling": asdict(resident.sampling),
        "model": dict(model.summary) if model else None,
        "context": {"n_ctx": session.n_ctx if session else None, "used": request.n_past if request else 0},
        "request": request.counters() if request else None,
        "counters": dict(resident.counters),
        "timings": dict(resident.timings),
        "memory": {**memory, "total": sum(memory.values())},
        "last_error": resident.last_error.to_dict() if resident.last_error else None,
    }
