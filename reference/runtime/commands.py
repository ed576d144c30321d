"""One class per command: its arguments, its work in a transient state, and what it changes.

A command is the :class:`~ggufsm.spec.guard.Decision` the machine carries
through one operation, so its guards read their inputs from it and leave what
they found on it (the prompt's token ids, the validated sampling). The
lifecycle calls its hooks when the machine says so:

- ``start``: the operation entered its transient state; make resident what the work needs,
- ``run``: the work done in that state,
- ``commit``: the table's outcome is a success; apply it,
- ``fail``: the table's outcome is an error; undo what ``start`` made.

Nothing here decides an outcome: which hook runs is the machine's choice.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import fields as dataclass_fields

from ggufsm.reference.runtime.config import RuntimeConfig
from ggufsm.reference.runtime.loading import Load, load_off_to_the_side
from ggufsm.reference.runtime.path_policy import ModelRoots
from ggufsm.reference.runtime.request import Generation, Request, TokenEvent
from ggufsm.reference.runtime.resident import Resident
from ggufsm.reference.sampling import Sampler, SamplingConfig
from ggufsm.spec.errors import GgufsmError, InvalidModel, ModelUnavailable
from ggufsm.spec.guard import Decision
from ggufsm.spec.names import State


class Command(Decision):
    # Defaults read off the class until a command sets its own (no __init__ of its own: each level of
    # __init__ a command is made through is a frame, in the Python a batched token touches cold).
    error: GgufsmError | None = None   # the table's error, once ``fail`` recorded it
    cause: BaseException | None = None  # what made it (a guard's named error, a failed callback)

    def start(self, resident: Resident) -> None:
        pass

    def run(self, resident: Resident) -> None:
        raise NotImplementedError(f"{type(self).__name__} has no work to run in a transient state")

    def commit(self, resident: Resident) -> None:
        pass

    def fail(self, resident: Resident) -> None:
        pass


class InitRuntime(Command):
    """A configuration given whole or as settings. Whatever is wrong with the arguments is one of the
    config_valid guard's problems, never a TypeError before the machine has decided."""

    def __init__(self, config: object | None, settings: Mapping[str, object]):
        super().__init__()
        known = {field.name for field in dataclass_fields(RuntimeConfig)}
        self.argument_problems = [f"unknown setting(s) {sorted(set(settings) - known)}; known: {sorted(known)}"
                                  ] if set(settings) - known else []
        if config is not None and not isinstance(config, RuntimeConfig):
            self.argument_problems.append(f"config must be a RuntimeConfig, not {type(config).__name__}")
        elif config is not None and settings:
            self.argument_problems.append("give a RuntimeConfig or settings, not both")
        self.config = config if isinstance(config, RuntimeConfig) else RuntimeConfig(
            **{name: value for name, value in settings.items() if name in known})  # type: ignore[arg-type]

    def problems(self) -> list[str]:
        return self.argument_problems + self.config.problems()

    def commit(self, resident: Resident) -> None:
        resident.config = self.config


class InstallModel(Command):
    """load_model and replace_model: the bytes are loaded off to the side while Loading; installed on success."""

    def __init__(self, source, roots: ModelRoots | None = None):
        super().__init__()
        self.source = source
        self.roots = roots
        self.load = Load()
        self.summary: dict = {}  # the installed model's, read while the handle is still this command's

    def run(self, resident: Resident) -> None:
        assert resident.config is not None  # every state a load starts from holds the configuration
        try:
            source = self.roots.admit(self.source) if self.roots is not None else self.source
        except ModelUnavailable as refused:   # outside the model roots: the file is not readable to this handle
            self.load = Load(failure=refused)
            return
        self.load = load_off_to_the_side(source, resident.config)

    def commit(self, resident: Resident) -> None:
        assert self.load.model is not None
        resident.install(self.load.model, self.load.session)
        resident.timings["load_s"] = self.load.seconds
        self.summary = dict(self.load.model.summary)

    def fail(self, resident: Resident) -> None:
        self.load.discard()


class SetSampling(Command):
    def __init__(self, config: SamplingConfig | None, overrides: Mapping[str, object]):
        super().__init__()
        self.config, self.overrides = config, dict(overrides)
        self.sampling: SamplingConfig | None = None  # the validated configuration (sampling_valid)

    def candidate(self, current: SamplingConfig) -> SamplingConfig:
        return self.config or current.with_overrides(**self.overrides)

    def commit(self, resident: Resident) -> None:
        assert self.sampling is not None and self.step is not None
        resident.sampling = self.sampling
        if resident.request is not None:  # the open request samples its next token with the new settings
            resident.request.sampler.reconfigure(self.sampling)
        if self.step.source == State.RecoverableError:  # the retry succeeded: the table clears last_error
            resident.last_error = None


class Forward(Command):
    """A command that runs the model: what its forwards found, for the guards known while it runs. The
    sampler refuses non-finite logits with InvalidModel (logits_finite decides); the session refuses a
    file that changed with ModelUnavailable (model_intact decides)."""

    nonfinite_logits = ""   # why the logits could not be sampled, or ""
    # A decode step of this command ran and the file held in the checks around its pass (cpp/forward: after
    # the pass read the weights), and the token was sampled from that pass: model_intact holds without
    # asking the file again (an fstat through the C++ core, each token, in the Python a token touches cold).
    file_checked_by_pass = False

    def run(self, resident: Resident) -> None:
        try:
            self.work(resident)
        except ModelUnavailable as error:   # the file changed under the forward
            self.cause = error
        except InvalidModel as error:       # the forward overflowed: nothing was sampled from it
            self.cause, self.nonfinite_logits = error, error.message

    def work(self, resident: Resident) -> None:
        """The forwards and what is taken from them (a method, not a closure made each token)."""
        raise NotImplementedError(f"{type(self).__name__} runs no forward")


class Generate(Forward):
    """A new request: checked before it exists, evaluated while Generating."""

    def __init__(self, prompt: str | Sequence[int], max_tokens: int, overrides: Mapping[str, object],
                 on_token: Callable[[TokenEvent], None] | None, stop_at_eos: bool):
        super().__init__()
        self.prompt, self.max_tokens, self.overrides = prompt, max_tokens, dict(overrides)
        self.on_token, self.stop_at_eos = on_token, stop_at_eos
        self.prompt_ids: list[int] = []              # input_valid
        self.sampling: SamplingConfig | None = None  # sampling_valid
        self.request: Request | None = None
        self.generation: Generation | None = None

    def candidate(self, current: SamplingConfig) -> SamplingConfig:
        return current.with_overrides(**self.overrides)

    def start(self, resident: Resident) -> None:
        assert resident.model is not None and self.sampling is not None
        resident.request = None
        resident.counters["requests"] += 1
        self.request = Request(self.prompt_ids, Sampler(self.sampling), resident.model.tokenizer.stream_decoder(),
                               resident.timings)
        resident.request = resident.running = self.request

    def run(self, resident: Resident) -> None:
        try:
            super().run(resident)
        finally:  # its token loop is over: handles batched with it need not wait for its next step
            if resident.session is not None:
                resident.session.idle()

    def work(self, resident: Resident) -> None:
        request = self.request
        assert request is not None and resident.model is not None
        end_ids = set(resident.model.tokenizer.eot_ids) if self.stop_at_eos else set()
        request.prefill(resident.session)
        request.run(resident.session, self.max_tokens, self.on_token, end_ids)
        self.cause = request.callback_error

    def commit(self, resident: Resident) -> None:
        assert self.request is not None
        self.generation = self.request.generation()
        resident.running = None

    def fail(self, resident: Resident) -> None:
        resident.running = None


class GenerateNextToken(Forward):
    event: TokenEvent | None = None  # the token, once run

    def start(self, resident: Resident) -> None:
        resident.running = resident.request

    def work(self, resident: Resident) -> None:
        request = resident.request
        assert request is not None
        decoded = request.n_decoded
        self.event = request.next_token(resident.session)
        self.file_checked_by_pass = request.n_decoded > decoded

    def commit(self, resident: Resident) -> None:
        resident.running = None

    def fail(self, resident: Resident) -> None:
        resident.running = None


class Reset(Command):
    def commit(self, resident: Resident) -> None:
        resident.request = None
        resident.last_error = None


class Free(Command):
    """Entering Freed releases everything it does not allow; there is nothing else to do."""


class Cancel(Command):
    """Stops the request the caller saw running, and only that one: a generate that started since is not touched."""

    def __init__(self, seen_running: Request | None):
        super().__init__()
        self.seen_running = seen_running

    def commit(self, resident: Resident) -> None:
        if self.seen_running is not None:
            self.seen_running.cancel()
