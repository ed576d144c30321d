"""A load, off to the side: the model and its session built from the bytes before anything is installed."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

from ggufsm.reference.model import registry
from ggufsm.reference.model.loaded_model import LoadedModel, build_loaded_model, check_finite_weights_once
from ggufsm.reference.runtime.config import RuntimeConfig
from ggufsm.reference.runtime.resident import release
from ggufsm.spec.errors import GgufsmError, ModelUnavailable

SOURCE_TYPES = (str, os.PathLike, bytes, bytearray, memoryview)


@dataclass
class Load:
    """What one load found: the built model and session, or the named error of its first problem."""

    model: LoadedModel | None = None
    session: object | None = None
    failure: GgufsmError | None = None
    seconds: float = 0.0

    @property
    def failure_message(self) -> str:
        return self.failure.message if self.failure is not None else ""

    def discard(self) -> None:
        release(self.model, self.session)
        self.model = self.session = None


def load_off_to_the_side(source, config: RuntimeConfig) -> Load:
    """Parse, validate and build everything a model needs; install nothing.
    `source`: a GGUF path, its bytes, or a registry name (`smollm2`, `gemma3`)."""
    started = time.perf_counter()
    load = Load()
    try:
        if not isinstance(source, SOURCE_TYPES):
            raise ModelUnavailable(f"the model source must be a path or bytes, not {type(source).__name__}")
        if isinstance(source, str) and source in registry.REGISTRY:
            # A registry name means its cached file, pulled (with a progress bar) when missing;
            # a failed pull is this load's ModelUnavailable like any unreadable path.
            source = registry.resolve(source, pull=True)
        load.model = build_loaded_model(source, n_threads=config.thread_count())
        weights_are_finite(load.model)
        end_read_ahead(load.model)
        load.session = load.model.weights.new_session(config.context_for(load.model.weights.n_ctx_train),
                                                      batched=config.batch_decode)
    except GgufsmError as error:
        load.discard()
        load.failure = error
    except BaseException:
        load.discard()
        raise
    load.seconds = time.perf_counter() - started
    return load


def weights_are_finite(model: LoadedModel) -> None:
    """InvalidModel unless every weight is finite; checked once per file (shared with its other handles)."""
    gguf = model.gguf
    assert gguf is not None  # a model just built holds its file
    # The forward's build checked the scales of the matrices it read (the repack, the Q8_0 scan) in that read.
    check_finite_weights_once(gguf, getattr(model.weights, "scales_checked", None))


def end_read_ahead(model: LoadedModel) -> None:
    """The load has read what it reads: the file's read-ahead (cpp/gguf/read_ahead.h) ends here, rather than wait at
    its distance past the load's last read for as long as the file stays open."""
    assert model.gguf is not None  # a model just built holds its file
    model.gguf.core.finish_read_ahead(True)
