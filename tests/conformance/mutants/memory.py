"""Mutants that hold on to memory the table says is returned."""

from __future__ import annotations

import numpy as np

from ggufsm.reference.runtime.commands import InstallModel
from ggufsm.reference.runtime.resident import Resident
from ggufsm.spec.names import ResidentDatum
from mutants.base import Mutant, MutantLifecycle, runtime_with
from mutants.rules import FREE_RELEASES, both, cell

KIND = "memory"
LEAK_FRACTION = 0.05

_LEAKED: list[object] = []   # never emptied: what the process lost


class _LoadLeakingAFraction(InstallModel):
    def commit(self, resident: Resident) -> None:
        super().commit(resident)
        assert resident.model is not None and resident.session is not None
        footprint = resident.model.gguf.file_size + sum(resident.session.nbytes.values())
        _LEAKED.append(np.ones(int(footprint * LEAK_FRACTION), np.uint8))   # the bug; touched, so resident


class LeaksFivePercentPerCycle(Mutant):
    """Every successful load leaks 5% of the model's resident footprint (file + KV cache + scratch + logits),
    never returned by free: about 40 KB a cycle on the kit's tiny model."""

    kind, breaks = KIND, both(cell("Ready", "free"), FREE_RELEASES)
    runtime_class = runtime_with(install_command=_LoadLeakingAFraction)


class _ResidentDroppingSessions(Resident):
    def keep_only(self, allowed: frozenset[str]) -> None:
        if ResidentDatum.model not in allowed and self.session is not None:
            _LEAKED.append(self.session)   # the bug: the session is dropped from the handle, never closed
            self.session = None
        super().keep_only(allowed)


class FreeKeepsKvCache(Mutant):
    """free releases the model but never closes its session: the KV cache, scratch and logits of every freed
    model stay allocated (the handle no longer lists them)."""

    kind, breaks = KIND, both(cell("ContinuationReady", "free"), FREE_RELEASES)
    runtime_class = runtime_with(
        lifecycle_class=type("Lifecycle", (MutantLifecycle,), {"resident_class": _ResidentDroppingSessions}))


MUTANTS: tuple[type[Mutant], ...] = (LeaksFivePercentPerCycle, FreeKeepsKvCache)
