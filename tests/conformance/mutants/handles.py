"""Mutants that keep a handle's data in a process-wide global: one handle alone behaves; two leak into each other."""

from __future__ import annotations

from ggufsm.reference.runtime.commands import InstallModel
from ggufsm.reference.runtime.resident import Resident
from ggufsm.reference.sampling import SamplingConfig
from ggufsm.spec.errors import GgufsmError
from mutants.base import HANDLES, Mutant, MutantLifecycle, runtime_with
from mutants.rules import SEPARATE_HANDLES

KIND = "handles"

_PROCESS: dict[str, object] = {}   # the globals: what each mutant keeps for the whole process


class _ResidentWithProcessSampling(Resident):
    """The sampling configuration lives in the process, not the handle (a new handle resets it: C-style
    globals set up by create())."""

    @property  # type: ignore[override]
    def sampling(self) -> SamplingConfig:
        return _PROCESS["sampling"]  # type: ignore[return-value]

    @sampling.setter
    def sampling(self, value: SamplingConfig) -> None:
        _PROCESS["sampling"] = value


class _ResidentWithProcessLastError(Resident):
    @property  # type: ignore[override]
    def last_error(self) -> GgufsmError | None:
        return _PROCESS.get("last_error")  # type: ignore[return-value]

    @last_error.setter
    def last_error(self, value: GgufsmError | None) -> None:
        _PROCESS["last_error"] = value


def _with_resident(resident_class: type[Resident]):
    return runtime_with(lifecycle_class=type("Lifecycle", (MutantLifecycle,), {"resident_class": resident_class}))


class ProcessWideSampling(Mutant):
    """set_sampling writes a process-wide configuration: one handle's settings apply to every handle's next
    token, and creating a handle resets everyone's to the defaults."""

    kind, breaks, observable = KIND, SEPARATE_HANDLES, HANDLES
    runtime_class = _with_resident(_ResidentWithProcessSampling)


class ProcessWideLastError(Mutant):
    """last_error is one process-wide slot: an error on one handle shows as every handle's last_error, and a
    reset on one clears everyone's."""

    kind, breaks, observable = KIND, SEPARATE_HANDLES, HANDLES
    runtime_class = _with_resident(_ResidentWithProcessLastError)


class _LoadSharingSession(InstallModel):
    def commit(self, resident: Resident) -> None:
        assert self.load.model is not None and self.load.session is not None
        source = self.load.model.source
        shared = _PROCESS.get(f"session:{source}")
        if shared is not None and sum(shared.nbytes.values()) > 0:   # type: ignore[attr-defined]
            self.load.session.close()   # the bug: the file's KV cache is shared by every handle that loads it
            self.load.session = shared
        else:
            _PROCESS[f"session:{source}"] = self.load.session
        super().commit(resident)


class SharedKvCacheAcrossHandles(Mutant):
    """Handles that load the same file share one KV cache (and scratch): one handle alone is right, two
    generating at once overwrite each other's keys and values."""

    kind, breaks, observable = KIND, SEPARATE_HANDLES, HANDLES
    runtime_class = runtime_with(install_command=_LoadSharingSession)


MUTANTS: tuple[type[Mutant], ...] = (ProcessWideSampling, ProcessWideLastError, SharedKvCacheAcrossHandles)
