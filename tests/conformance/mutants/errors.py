"""Mutants that raise the wrong named error, or record the error wrongly."""

from __future__ import annotations

from ggufsm.reference.runtime.commands import Command, Generate, InstallModel
from ggufsm.reference.runtime.lifecycle import Lifecycle
from ggufsm.reference.runtime.resident import Resident
from ggufsm.spec.errors import InvalidModel, InvalidState, ModelUnavailable, UnsupportedModel
from ggufsm.spec.names import ErrorCode, ResidentDatum, State
from mutants.base import Mutant, MutantRuntime, lifecycle_with, runtime_with
from mutants.rules import FREE_RELEASES, both, cell, resident, resident_datum

KIND = "errors"


def _load_calling(failure: type, reported: type) -> type[InstallModel]:
    class _Misnaming(InstallModel):
        def run(self, resident: Resident) -> None:
            super().run(resident)
            if isinstance(self.load.failure, failure):   # the bug: one error code for two mistakes
                self.load.failure = reported(self.load.failure.message)

    return _Misnaming


class MissingFileIsInvalidModel(Mutant):
    """A missing model file fails with InvalidModel instead of ModelUnavailable (same state, wrong code)."""

    kind, breaks = KIND, cell("Initialized", "load_model", model_readable=False)
    runtime_class = runtime_with(install_command=_load_calling(ModelUnavailable, InvalidModel))


class UnsupportedIsInvalidModel(Mutant):
    """A well-formed file of an unknown architecture fails with InvalidModel instead of UnsupportedModel."""

    kind, breaks = KIND, cell("Initialized", "load_model", model_readable=True, model_well_formed=True,
                              model_supported=False)
    runtime_class = runtime_with(install_command=_load_calling(UnsupportedModel, InvalidModel))


def _fail_recording_nothing_for_loads(self, command: Command) -> None:
    Lifecycle.fail(self, command)
    if isinstance(command, InstallModel):
        self.resident.last_error = None   # the bug: a failed load is raised but not recorded


class FailedLoadRecordsNoLastError(Mutant):
    """A failed load raises its error and lands in RecoverableError, but last_error stays empty."""

    kind, breaks = KIND, both(cell("Initialized", "load_model", model_readable=False),
                              resident(State.RecoverableError, ResidentDatum.last_error))
    runtime_class = lifecycle_with(fail=_fail_recording_nothing_for_loads)


def _fail_keeping_first_error(self, command: Command) -> None:
    first = self.resident.last_error
    Lifecycle.fail(self, command)
    if first is not None:
        self.resident.last_error = first   # the bug: only an empty slot is written


class LastErrorKeepsFirstError(Mutant):
    """last_error records only the first error: while one is set, later failures are raised but the query
    still answers the old one."""

    kind, breaks = KIND, resident_datum(ResidentDatum.last_error)
    runtime_class = lifecycle_with(fail=_fail_keeping_first_error)


def _fail_with_source_as_state_after(self, command: Command) -> None:
    Lifecycle.fail(self, command)
    assert command.error is not None and command.step is not None
    command.error.state_after = command.step.source   # the bug: the state it started in


class ErrorNamesWrongStateAfter(Mutant):
    """Every error's state_after names the state its last transition started from (the operation's own, or the
    transient state it ran in), not the state it left the handle in."""

    kind, breaks = KIND, cell("Ready", "generate", input_valid=False)
    runtime_class = lifecycle_with(fail=_fail_with_source_as_state_after)


def _input_valid_measuring_length(self, command: Generate) -> bool:
    Lifecycle.input_valid(self, command)
    assert self.resident.session is not None
    # the bug: a prompt too long for the context is called malformed input
    return command.holds(len(command.prompt_ids) < self.resident.session.n_ctx, "the prompt is too long")


class ContextOverflowIsInvalidInput(Mutant):
    """A prompt that does not fit the context fails with InvalidInput instead of ContextOverflow."""

    kind, breaks = KIND, cell("Ready", "generate", input_valid=True, sampling_valid=True, prompt_fits=False)
    runtime_class = lifecycle_with(input_valid=_input_valid_measuring_length)


def _fail_refusing_after_free(self, command: Command) -> None:
    Lifecycle.fail(self, command)
    assert command.error is not None and command.step is not None
    if command.error.code == ErrorCode.ModelNotLoaded and command.step.source == State.Freed:
        command.error = InvalidState(command.error.message, state_after=command.step.to)   # the bug
        if self.resident.last_error is not None:
            self.resident.last_error = command.error


class GenerateAfterFreeIsInvalidState(Mutant):
    """generate (and generate_next_token, replace_model) after free fail with InvalidState instead of
    ModelNotLoaded."""

    kind, breaks = KIND, both(cell("Freed", "generate"), FREE_RELEASES)
    runtime_class = lifecycle_with(fail=_fail_refusing_after_free)


class _FreeOnce(MutantRuntime):
    def free(self) -> None:
        if self.state == State.Freed:
            raise InvalidState("the runtime is already freed")   # the bug
        super().free()


class SecondFreeRefused(Mutant):
    """free in Freed fails with InvalidState instead of being a safe no-op."""

    kind, breaks = KIND, cell("Freed", "free")
    runtime_class = _FreeOnce


MUTANTS: tuple[type[Mutant], ...] = (
    MissingFileIsInvalidModel, UnsupportedIsInvalidModel, FailedLoadRecordsNoLastError, LastErrorKeepsFirstError,
    ErrorNamesWrongStateAfter, ContextOverflowIsInvalidInput, GenerateAfterFreeIsInvalidState, SecondFreeRefused,
)
