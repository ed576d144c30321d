"""What every hand-written mutant is made of: the REAL reference runtime with one part swapped.

A mutant is an adapter class (``python:mutants.KIND:ClassName`` is a factory:
calling the class gives a fresh adapter). Its runtime is a
:class:`MutantRuntime`, which is the reference ``Runtime`` with its parts
named as class attributes: the lifecycle (the machine's model, where the
guards and the callbacks live), the resident data, and one command class per
operation. A mutant overrides exactly one of them, by a subclass that changes
one method, so its one deviation is the only code in it.

Each mutant states the rule it breaks (:mod:`mutants.rules`: a branch of the
table, looked up in the table, or a rule of the seed) and whether the suite
should be able to catch it through the protocol.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import suppress
from typing import ClassVar

from ggufsm.conformance.adapters.reference import ReferenceAdapter
from ggufsm.reference.runtime import Runtime, RuntimeConfig
from ggufsm.reference.runtime.commands import (
    Free,
    Generate,
    GenerateNextToken,
    InitRuntime,
    InstallModel,
    Reset,
    SetSampling,
)
from ggufsm.reference.runtime.lifecycle import Lifecycle
from ggufsm.reference.runtime.request import Generation, Request, TokenEvent
from ggufsm.reference.runtime.resident import Resident
from ggufsm.reference.sampling import SamplingConfig
from ggufsm.spec import Spec, load_spec
from ggufsm.spec.names import Operation
from mutants.rules import Rule

# How a mutant can be seen (Mutant.observable).
PROTOCOL = "protocol 1.0"                 # through one handle, with the protocol as it is
HANDLES = "protocol 1.1 (handles)"        # only by comparing two handles of one process
DIAGNOSTICS = "protocol 1.1 (diagnostics)"  # only through structured diagnostics (request counters, model identity)
UNOBSERVABLE = "unobservable"             # no sequence of calls can tell it from the reference (the docstring says why)


class MutantLifecycle(Lifecycle):
    """The reference lifecycle, with the resident data's class as a part."""

    resident_class: ClassVar[type[Resident]] = Resident

    def __init__(self, spec: Spec):
        super().__init__(spec)
        self.resident = self.resident_class()


class GenerateWithRequest(Generate):
    """The reference's Generate, whose request (the one it builds in ``start``) is of ``request_class``."""

    request_class: ClassVar[type[Request]] = Request

    def start(self, resident: Resident) -> None:
        super().start(resident)
        assert self.request is not None
        self.request.__class__ = self.request_class  # the reference's request, with the mutant's method


class MutantRuntime(Runtime):
    """The reference Runtime with its parts as class attributes; each command built from its class."""

    lifecycle_class: ClassVar[type[Lifecycle]] = MutantLifecycle
    init_command: ClassVar[type[InitRuntime]] = InitRuntime
    install_command: ClassVar[type[InstallModel]] = InstallModel
    sampling_command: ClassVar[type[SetSampling]] = SetSampling
    generate_command: ClassVar[type[Generate]] = Generate
    next_token_command: ClassVar[type[GenerateNextToken]] = GenerateNextToken
    reset_command: ClassVar[type[Reset]] = Reset
    free_command: ClassVar[type[Free]] = Free

    def __init__(self) -> None:
        self._lifecycle = self.lifecycle_class(load_spec())

    def init_runtime(self, config: RuntimeConfig | None = None, **settings) -> None:
        self._lifecycle.perform(Operation.init_runtime, self.init_command(config, settings))

    def set_sampling(self, config: SamplingConfig | None = None, **parameters) -> None:
        self._lifecycle.perform(Operation.set_sampling, self.sampling_command(config, parameters))

    def generate(self, prompt: str | Sequence[int], max_tokens: int = 128, *,
                 on_token: Callable[[TokenEvent], None] | None = None, stop_at_eos: bool = True,
                 **sampling_overrides) -> Generation:
        command = self.generate_command(prompt, max_tokens, sampling_overrides, on_token, stop_at_eos)
        self._lifecycle.perform(Operation.generate, command)
        assert command.generation is not None
        return command.generation

    def generate_next_token(self) -> TokenEvent:
        command = self.next_token_command()
        self._lifecycle.perform(Operation.generate_next_token, command)
        assert command.event is not None
        return command.event

    def reset(self) -> None:
        self._lifecycle.perform(Operation.reset, self.reset_command())

    def free(self) -> None:
        self._lifecycle.perform(Operation.free, self.free_command())

    def _install(self, operation: Operation, source) -> dict:
        command = self.install_command(source)
        self._lifecycle.perform(operation, command)
        return command.summary


class Mutant(ReferenceAdapter):
    """A broken runtime behind the reference's adapter. Subclasses set the metadata and one part."""

    kind: ClassVar[str]
    breaks: ClassVar[Rule]
    observable: ClassVar[str] = PROTOCOL
    runtime_class: ClassVar[type[Runtime]] = MutantRuntime

    def __init__(self) -> None:
        super().__init__()
        self.runtime = self.runtime_class()

    def close(self) -> None:
        # The kit closes every adapter (cancel, then free) between cases, outside any case; an error there
        # would end a whole in-process run (close_quietly passes it on), where a mutant's free is broken on
        # purpose. Closing is the harness's, not an operation of the table: its errors are dropped.
        with suppress(Exception):
            super().close()

    @property
    def name(self) -> str:  # type: ignore[override]
        return f"mutant-{type(self).__name__}"

    @classmethod
    def impl(cls) -> str:
        """The --impl string naming this mutant's factory."""
        return f"python:{cls.__module__}:{cls.__name__}"

    @classmethod
    def summary(cls) -> str:
        """The docstring's first sentence: what is broken."""
        return " ".join((cls.__doc__ or "").strip().split("\n\n")[0].split())


def runtime_with(**parts) -> type[MutantRuntime]:
    """A MutantRuntime with the given parts swapped (e.g. ``reset_command=KeepsLastError``)."""
    unknown = sorted(name for name in parts if not hasattr(MutantRuntime, name))
    if unknown:
        raise AttributeError(f"MutantRuntime has no part(s) {unknown}")
    return type("MutantRuntime", (MutantRuntime,), dict(parts))


def lifecycle_with(**parts) -> type[MutantRuntime]:
    """A MutantRuntime whose lifecycle has the given methods or attributes swapped."""
    lifecycle = type("MutantLifecycle", (MutantLifecycle,), dict(parts))
    return runtime_with(lifecycle_class=lifecycle)
