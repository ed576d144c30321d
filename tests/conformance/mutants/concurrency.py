"""Mutants that get the handle's concurrency wrong: commands that do not wait, queries and cancel that do,
a cancel that stops nothing or the wrong request."""

from __future__ import annotations

from ggufsm.reference.runtime.commands import Generate
from ggufsm.spec.names import State
from mutants.base import Mutant, MutantLifecycle, MutantRuntime, lifecycle_with, runtime_with
from mutants.rules import SERIALIZED, both, cell

KIND = "concurrency"


class _NoLock:
    """A lock that never waits."""

    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None

    def locked(self) -> bool:
        return False


class _UnlockedLifecycle(MutantLifecycle):
    def __init__(self, spec) -> None:
        super().__init__(spec)
        self.lock = _NoLock()  # type: ignore[assignment]  # the bug


class CommandsNotSerialized(Mutant):
    """Commands take no lock: one sent while a generate runs is fired at once, in Generating, where the
    table has no transition for it (an internal error), and concurrent generates trample each other."""

    kind, breaks = KIND, both(cell("Generating", "generate"), SERIALIZED)
    runtime_class = runtime_with(lifecycle_class=_UnlockedLifecycle)


class _SamplingWithoutWaiting(MutantRuntime):
    def set_sampling(self, config=None, **parameters) -> None:
        resident = self._lifecycle.resident
        running = resident.running
        if running is None:
            return super().set_sampling(config, **parameters)
        # the bug: applied at once to the running request, past the lock and the machine
        sampling = (config or resident.sampling.with_overrides(**parameters)).validated()
        resident.sampling = sampling
        running.sampler.reconfigure(sampling)


class SetSamplingDoesNotWait(Mutant):
    """set_sampling sent while a generate runs applies at once (to the running request's next token) and
    answers, instead of waiting for the generate to end."""

    kind, breaks = KIND, both(cell("Generating", "set_sampling"), SERIALIZED)
    runtime_class = _SamplingWithoutWaiting


class _QueriesTakingTheLock(MutantRuntime):
    @property
    def state(self) -> State:
        with self._lifecycle.lock:   # the bug: a query waits for the running command
            return State(self._lifecycle.state)

    @property
    def last_error(self):
        with self._lifecycle.lock:
            return self._lifecycle.resident.last_error

    def diagnostics(self) -> dict:
        with self._lifecycle.lock:
            return super().diagnostics()


class QueriesWaitForCommand(Mutant):
    """state, last_error and diagnostics wait for the running command to finish: they answer, but only once
    the generate or load is over, so the transient states are never observed."""

    kind, breaks = KIND, cell("Generating", "state")
    runtime_class = _QueriesTakingTheLock


class _CancelTakingTheLock(MutantRuntime):
    def cancel(self) -> bool:
        with self._lifecycle.lock:   # the bug: cancel waits like a command; by then nothing is running
            return super().cancel()


class CancelWaits(Mutant):
    """cancel waits for the running generate to finish before it looks: the generate is never cancelled, and
    cancel answers was_running false once it is over."""

    kind, breaks = KIND, cell("Generating", "cancel")
    runtime_class = _CancelTakingTheLock


def _cancel_stopping_nothing(self) -> bool:
    return self.resident.running is not None   # the bug: answers as if it stopped the request


class CancelIgnored(Mutant):
    """cancel answers was_running true while a generate runs but does not stop it: the generate ends
    normally (length or context) instead of Cancelled."""

    kind, breaks = KIND, cell("Generating", "cancel")
    runtime_class = lifecycle_with(cancel_running=_cancel_stopping_nothing)


class _StickyCancelLifecycle(MutantLifecycle):
    pending_cancel = False

    def cancel_running(self) -> bool:
        if self.resident.running is None:
            self.pending_cancel = True   # the bug: a cancel with nothing running is kept for the next request
        return super().cancel_running()

    def start(self, command) -> None:
        super().start(command)
        if self.pending_cancel and isinstance(command, Generate) and command.request is not None:
            self.pending_cancel = False
            command.request.cancel()


class StickyCancel(Mutant):
    """A cancel with nothing running answers was_running false, but is remembered: the next generate is
    cancelled before its first token."""

    kind, breaks = KIND, cell("Ready", "cancel")
    runtime_class = runtime_with(lifecycle_class=_StickyCancelLifecycle)


MUTANTS: tuple[type[Mutant], ...] = (
    CommandsNotSerialized, SetSamplingDoesNotWait, QueriesWaitForCommand, CancelWaits, CancelIgnored, StickyCancel,
)
