"""Mutants that report the lifecycle wrongly, or skip its lazy initialisation."""

from __future__ import annotations

from ggufsm.spec.errors import InvalidState
from ggufsm.spec.names import State
from mutants.base import Mutant, MutantRuntime, lifecycle_with
from mutants.rules import LAZY_INIT, both, cell, state

KIND = "reporting"


class _ReportsStateAs(Mutant):
    """Reports `reported` wherever the runtime is in `actual`."""

    actual: State
    reported: State

    def current_state(self) -> str | None:
        now = super().current_state()
        return self.reported if now == self.actual else now   # the bug

    def op_state(self) -> str:
        return str(self.current_state())


class ReportsDestinationWhileGenerating(_ReportsStateAs):
    """While a generate runs, the state is reported as ContinuationReady (where it will land) instead of
    Generating."""

    kind, breaks = KIND, state(State.Generating)
    actual, reported = State.Generating, State.ContinuationReady


class ReportsSourceWhileLoading(_ReportsStateAs):
    """While a load runs, the state is reported as Initialized (where it started from a fresh runtime)
    instead of Loading."""

    kind, breaks = KIND, state(State.Loading)
    actual, reported = State.Loading, State.Initialized


def _refuse_lazily(self, command) -> None:
    raise InvalidState("the runtime is not initialized: call init_runtime first")   # the bug


class NoLazyInit(Mutant):
    """Operations in Uninitialized are refused with InvalidState (nothing is created) instead of initialising
    with the defaults and then applying the Initialized cell."""

    kind, breaks = KIND, both(cell("Uninitialized", "load_model", model_readable=False), LAZY_INIT)
    runtime_class = lifecycle_with(initialize=_refuse_lazily)


class _FreeInitialising(MutantRuntime):
    def free(self) -> None:
        if self.state == State.Uninitialized:
            self.init_runtime()   # the bug: free initialises lazily like the other commands
        super().free()


class FreeInUninitializedCreatesRuntime(Mutant):
    """free in Uninitialized creates the runtime with the defaults and lands in Freed, instead of leaving
    nothing created."""

    kind, breaks = KIND, cell("Uninitialized", "free")
    runtime_class = _FreeInitialising


class _DiagnosticsInitialising(MutantRuntime):
    def diagnostics(self) -> dict:
        if self.state == State.Uninitialized:
            self.init_runtime()   # the bug: reading creates the runtime
        return super().diagnostics()


class DiagnosticsCreatesRuntime(Mutant):
    """The diagnostics query in Uninitialized initialises the runtime (state Initialized afterwards); a query
    must change nothing."""

    kind, breaks = KIND, cell("Uninitialized", "diagnostics")
    runtime_class = _DiagnosticsInitialising


MUTANTS: tuple[type[Mutant], ...] = (
    ReportsDestinationWhileGenerating, ReportsSourceWhileLoading, NoLazyInit, FreeInUninitializedCreatesRuntime,
    DiagnosticsCreatesRuntime,
)
