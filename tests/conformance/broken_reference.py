"""Deliberately broken variants of the REAL reference runtime, to prove the suite catches real bugs.

Each variant subclasses `ggufsm.reference.runtime.Runtime` and changes one
method the way runtimes get it wrong; everything else (the C++ core, the
tokenizer, the table-driven decisions) is the reference's own. Importable by
child processes too (`python:broken_reference:make_...` with this directory on
PYTHONPATH).
"""

from __future__ import annotations

import gc
import os
import signal

import numpy as np

from ggufsm.conformance.adapters.reference import ReferenceAdapter
from ggufsm.reference.runtime import Runtime
from ggufsm.spec.errors import GgufsmError
from ggufsm.spec.names import ErrorCode, State

LOAD_ERRORS = (ErrorCode.ModelUnavailable, ErrorCode.InvalidModel, ErrorCode.UnsupportedModel)


class ResetKeepsRequestRuntime(Runtime):
    """reset() only forgets the last error: the open request, its KV cache and the state stay, so a
    generate can still be continued after the reset (the bug of a runtime that never clears its KV)."""

    def reset(self) -> None:
        if self.state == State.Uninitialized:
            return super().reset()  # the lazy init is right
        with self._lifecycle.lock:  # the bug: past the machine, so nothing else changes
            self._lifecycle.resident.last_error = None


class ReadyAfterFailedLoadRuntime(Runtime):
    """A failed load leaves the handle in Ready, as if the model had been installed (the bug of a
    runtime that sets its state before loading and forgets to roll back)."""

    def _install(self, operation: str, source) -> dict:
        try:
            return super()._install(operation, source)
        except GgufsmError as error:
            if error.code in LOAD_ERRORS:
                self._lifecycle.state = State.Ready  # the bug: the state written by hand, past the machine
            raise


class LeaksOnFreeRuntime(Runtime):
    """Each load allocates an 8 MiB scratch buffer that free() never releases."""

    SCRATCH_BYTES = 8 << 20

    def __init__(self) -> None:
        super().__init__()
        self._scratch: list[np.ndarray] = []

    def load_model(self, source) -> dict:
        summary = super().load_model(source)
        self._scratch.append(np.ones(self.SCRATCH_BYTES, np.uint8))   # touched, so resident
        return summary


class LeaksFivePercentRuntime(Runtime):
    """Each load keeps 5% of the memory the model and its session hold (diagnostics' memory total)
    after free(): the smallest leak the memory rule must catch."""

    def __init__(self) -> None:
        super().__init__()
        self._kept: list[np.ndarray] = []

    def load_model(self, source) -> dict:
        summary = super().load_model(source)
        held = self.diagnostics()["memory"]["total"]
        self._kept.append(np.ones(int(0.05 * held), np.uint8))   # touched, so resident
        return summary


class _Cycle:
    """An object that refers to itself: only Python's cyclic collector frees it."""

    def __init__(self, payload: np.ndarray) -> None:
        self.payload, self.itself = payload, self


class FreedByTheCollectorRuntime(Runtime):
    """Not a leak: each load holds an 8 MiB buffer in a reference cycle (as a llama-cpp-python `Llama` and
    its sampler's closure hold each other) and free() drops the last outside reference, so the buffer is
    garbage that the cyclic collector returns. Automatic collection is off in this process, so until a
    collection it is still resident: a reading that counts garbage sees 8 MiB a cycle."""

    SCRATCH_BYTES = 8 << 20

    def __init__(self) -> None:
        super().__init__()
        gc.disable()
        self._held: _Cycle | None = None

    def load_model(self, source) -> dict:
        summary = super().load_model(source)
        self._held = _Cycle(np.ones(self.SCRATCH_BYTES, np.uint8))   # touched, so resident
        return summary

    def free(self) -> None:
        self._held = None
        super().free()


class IgnoresFileChangesRuntime(Runtime):
    """The model_intact guard always holds: a generate on a file changed under it ends as if nothing
    happened (the bug of a runtime that never looks at its file again after the load)."""

    def __init__(self) -> None:
        super().__init__()
        self._lifecycle.model_intact = lambda command: True   # type: ignore[method-assign]


class DiesOnFileChangeRuntime(Runtime):
    """What an unguarded mapping does: the first forward over a file changed under it kills the process
    with SIGBUS (sent here, so the test does not depend on which page the forward touches first)."""

    def _dies_if_changed(self) -> None:
        model = self._lifecycle.resident.model
        if model is not None and model.file_changed():
            os.kill(os.getpid(), signal.SIGBUS)

    def generate(self, *args, **kwargs):
        self._dies_if_changed()
        return super().generate(*args, **kwargs)

    def generate_next_token(self, *args, **kwargs):
        self._dies_if_changed()
        return super().generate_next_token(*args, **kwargs)


class OneTokenPastMaxTokensRuntime(Runtime):
    """A generate that reaches max_tokens makes one more token and still says `length` (llama-cpp-python
    0.3.36's create_completion does this when the last token ends inside a UTF-8 character: its
    multi-byte hold-back `continue`s past the max_tokens check)."""

    def generate(self, prompt, max_tokens: int = 128, **options):
        return super().generate(prompt, max_tokens + 1, **options)


class BrokenReferenceAdapter(ReferenceAdapter):
    runtime_class: type[Runtime] = Runtime

    def __init__(self) -> None:
        super().__init__()
        self.runtime = self.runtime_class()


class ResetKeepsRequest(BrokenReferenceAdapter):
    name = "reference-reset-keeps-request"
    runtime_class = ResetKeepsRequestRuntime


class ReadyAfterFailedLoad(BrokenReferenceAdapter):
    name = "reference-ready-after-failed-load"
    runtime_class = ReadyAfterFailedLoadRuntime


class LeaksOnFree(BrokenReferenceAdapter):
    name = "reference-leaks-on-free"
    runtime_class = LeaksOnFreeRuntime


class LeaksFivePercent(BrokenReferenceAdapter):
    name = "reference-leaks-five-percent"
    runtime_class = LeaksFivePercentRuntime


class FreedByTheCollector(BrokenReferenceAdapter):
    name = "reference-freed-by-the-collector"
    runtime_class = FreedByTheCollectorRuntime


class IgnoresFileChanges(BrokenReferenceAdapter):
    name = "reference-ignores-file-changes"
    runtime_class = IgnoresFileChangesRuntime


class DiesOnFileChange(BrokenReferenceAdapter):
    name = "reference-dies-on-file-change"
    runtime_class = DiesOnFileChangeRuntime


class OneTokenPastMaxTokens(BrokenReferenceAdapter):
    name = "reference-one-token-past-max-tokens"
    runtime_class = OneTokenPastMaxTokensRuntime


class SilentResetKeepsRequest(ResetKeepsRequest):
    """The reset bug behind an adapter that reports no state, no diagnostics and no last error:
    only the behavioural cases can see it."""

    name = "reference-silent-reset-keeps-request"
    op_state = op_diagnostics = op_last_error = None

    def reports_state(self) -> bool:
        return False


def make_reset_keeps_request() -> ResetKeepsRequest:
    return ResetKeepsRequest()


def make_ready_after_failed_load() -> ReadyAfterFailedLoad:
    return ReadyAfterFailedLoad()


def make_silent_reset_keeps_request() -> SilentResetKeepsRequest:
    return SilentResetKeepsRequest()


def make_leaks_on_free() -> LeaksOnFree:
    return LeaksOnFree()


def make_leaks_five_percent() -> LeaksFivePercent:
    return LeaksFivePercent()


def make_freed_by_the_collector() -> FreedByTheCollector:
    return FreedByTheCollector()


def make_ignores_file_changes() -> IgnoresFileChanges:
    return IgnoresFileChanges()


def make_dies_on_file_change() -> DiesOnFileChange:
    return DiesOnFileChange()


def make_one_token_past_max_tokens() -> OneTokenPastMaxTokens:
    return OneTokenPastMaxTokens()
