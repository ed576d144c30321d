"""A load, off to the side: the model and its session built from the bytes before anything is installed."""

from __future__ import annotations

import os
import stat
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
        read_ahead(source)
        load.model = build_loaded_model(source, n_threads=config.thread_count())
        weights_are_finite(load.model)
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


def read_ahead(source) -> None:
    """Asks the kernel to start reading a model file into the page cache now, in the background: the load
    reads all of it (the repack, the finite-weights check, the first forward), and on a cold cache it
    would otherwise wait on one page fault's readahead window at a time. Measured on a cold private copy of
    Gemma 3 (3 alternations, load average 11): load 1.15-1.66 s with it, 2.28-4.33 s without; advising the
    file in 8 MiB chunks from a thread (one advice is capped at the kernel's readahead window) measured no
    better (1.67-4.33 s). Advice only: a path that cannot be opened here is left to the load to name."""
    if not isinstance(source, (str, os.PathLike)):
        return
    try:
        # Non-blocking: a FIFO at the path must not hold the load here (the core refuses it by name).
        fd = os.open(source, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except (OSError, TypeError, ValueError):
        return
    try:
        if stat.S_ISREG(os.fstat(fd).st_mode):
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_WILLNEED)
    except OSError:
        pass
    finally:
        os.close(fd)


def weights_are_finite(model: LoadedModel) -> None:
    """InvalidModel unless every weight is finite; checked once per file (shared with its other handles)."""
    gguf = model.gguf
    assert gguf is not None  # a model just built holds its file
    # The forward's build checked the scales of the matrices it read (the repack, the Q8_0 scan) in that read.
    check_finite_weights_once(gguf, getattr(model.weights, "scales_checked", None))
