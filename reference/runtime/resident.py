"""What a handle holds, named as the table's resident data, and how it is dropped.

The table lists, per state, the data that must be resident and the data that
may be; entering a state keeps only what it allows (:meth:`Resident.keep_only`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ggufsm.reference.architectures.fused import FusedSession
from ggufsm.reference.model.loaded_model import LoadedModel
from ggufsm.reference.runtime.config import RuntimeConfig
from ggufsm.reference.runtime.request import Request
from ggufsm.reference.sampling import SamplingConfig
from ggufsm.spec.errors import GgufsmError
from ggufsm.spec.names import ResidentDatum

# The data keep_only drops, named once: on Python 3.11 reading a member off an Enum class goes through
# EnumType.__getattr__'s hook (~0.5 us hot), and keep_only runs twice a generate_next_token.
_REQUEST, _MODEL, _LAST_ERROR = ResidentDatum.request, ResidentDatum.model, ResidentDatum.last_error
# Every datum keep_only can drop: a state that allows all of them drops nothing.
DROPPABLE = frozenset((_REQUEST, _MODEL, _LAST_ERROR))


@dataclass
class Resident:
    config: RuntimeConfig | None = None      # with it, the diagnostics: the runtime exists
    sampling: SamplingConfig = field(default_factory=SamplingConfig)
    model: LoadedModel | None = None         # the model and its tokenizer
    session: FusedSession | None = None      # the model's KV cache, scratch and logits
    request: Request | None = None           # the open request
    running: Request | None = None           # the request a running generate evaluates (cancel stops it)
    last_error: GgufsmError | None = None
    counters: dict[str, int] = field(default_factory=lambda: {"operations": 0, "errors": 0, "requests": 0})
    timings: dict[str, float] = field(default_factory=dict)
    identity: tuple[Any, dict] | None = None  # (weakref to the model, its file name and sha256): diagnostics' cache

    def present(self) -> set[ResidentDatum]:
        held = set()
        if self.config is not None:
            held |= {ResidentDatum.config, ResidentDatum.diagnostics}
        if self.model is not None:
            held |= {ResidentDatum.model, ResidentDatum.tokenizer}
        if self.session is not None:
            held |= {ResidentDatum.kv_cache, ResidentDatum.scratch, ResidentDatum.logits}
        if self.request is not None:
            held.add(ResidentDatum.request)
        if self.last_error is not None:
            held.add(ResidentDatum.last_error)
        return held

    def keep_only(self, allowed: frozenset[str]) -> None:
        """Drop every datum a state does not allow (memory is returned: the model and session are closed)."""
        if _REQUEST not in allowed:
            self.request = None
        if _MODEL not in allowed and self.model is not None:
            model, session = self.model, self.session
            self.model = self.session = None
            release(model, session)
        if _LAST_ERROR not in allowed:
            self.last_error = None

    def install(self, model: LoadedModel, session) -> None:
        """Put a model built off to the side in place, then release the previous one."""
        previous = self.model, self.session
        self.model, self.session = model, session
        self.request = None
        release(*previous)


def release(model: LoadedModel | None, session) -> None:
    if session is not None:
        session.close()
    if model is not None:
        model.close()
