"""Recipes: how each guard value of the table is produced with concrete inputs.

The table says *when* an outcome applies (guard values); a conformance case
must make those guards hold on a real implementation. Each guard has a recipe
per value: a missing path makes ``model_readable`` false, ``temperature=-1``
makes ``sampling_valid`` false, and so on. ``model_resident`` has no call of
its own: it is a property of how the state was reached, so the planner picks
a path that leaves the model resident or not.

``realize`` turns an operation and guard values into an :class:`Arrangement`:
the call, the calls that must come before it (a generate that fills the
context), whether a cancel is sent while it runs, and whether the kit changes
the loaded model's file before the call (``model_intact`` false: the case
runs on a private copy of the file, which the kit truncates or rewrites in
place between two calls, as a user's ``cp`` or an interrupted download would).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from enum import Enum
from types import MappingProxyType
from typing import Any

from ggufsm.spec.names import FinishReason, Guard, Operation


@dataclass(frozen=True)
class GuardRecipe:
    """How a guard is made true or false, and the value it takes when a case does not ask for one."""

    natural: bool
    when_true: str
    when_false: str

    def describe(self, value: bool) -> str:
        return self.when_true if value else self.when_false


RECIPES: Mapping[Guard, GuardRecipe] = MappingProxyType({
    Guard.config_valid: GuardRecipe(True, "init_runtime(n_ctx=<suite n_ctx>)", "init_runtime(n_ctx=-1)"),
    Guard.model_resident: GuardRecipe(True, "reached by a path that leaves a model installed",
                                      "reached by a path that installs none (or frees it)"),
    Guard.model_readable: GuardRecipe(True, "an existing file", "a path that does not exist"),
    Guard.model_well_formed: GuardRecipe(True, "a well-formed GGUF file", "a corrupt GGUF file"),
    Guard.model_supported: GuardRecipe(True, "the suite's model",
                                       "a well-formed GGUF file with an unknown architecture"),
    Guard.sampling_valid: GuardRecipe(True, "temperature=0 (greedy)", "temperature=-1"),
    Guard.input_valid: GuardRecipe(True, "a short prompt, max_tokens >= 0", "max_tokens=-1"),
    Guard.prompt_fits: GuardRecipe(True, "a short prompt", "a prompt longer than the context (n_ctx)"),
    Guard.context_left: GuardRecipe(True, "a request with room left", "a generate that filled the whole context first"),
    Guard.model_intact: GuardRecipe(True, "the model file as it was loaded",
                                    "the case loads a private copy of the model file, which the kit truncates to half "
                                    "its size (variant overwrite: rewrites in place with the other model's bytes, as "
                                    "cp does) after the path and before the call"),
    Guard.logits_finite: GuardRecipe(True, "the suite's model",
                                     "the case runs on overflow_model (finite weights whose forward overflows float32 "
                                     "on one token) where it names model: a generate of overflow_prompt; a "
                                     "generate_next_token after a one-token generate of before_overflow_prompt"),
    Guard.cancelled: GuardRecipe(False, "cancel() from another thread at the first token of a generate that asks "
                                        "for the whole cancel_n_ctx context", "no cancel"),
})

NATURAL_VALUES: Mapping[Guard, bool] = MappingProxyType({guard: recipe.natural for guard, recipe in RECIPES.items()})

# Controls that, sent while a command runs, make one of its guards true.
INTERRUPTS: Mapping[Operation, Guard] = MappingProxyType({Operation.cancel: Guard.cancelled})

GREEDY: Mapping[str, float] = MappingProxyType({"temperature": 0.0})
INVALID_SAMPLING: Mapping[str, float] = MappingProxyType({"temperature": -1.0})
# Sampling hot enough that any model's draws leave its greedy path at once (every candidate kept, the
# logits divided by 50): probes set it to see whether settings reach a request.
PROBE_SAMPLING: Mapping[str, float | int] = MappingProxyType(
    {"temperature": 50.0, "top_k": 0, "top_p": 1.0, "min_p": 0.0, "seed": 4242})


@dataclass(frozen=True)
class SuiteInputs:
    """The files and values the recipes use; made once per run (see conformance.inputs)."""

    model: str                 # a model every implementation should run
    alt_model: str             # a different model (replace_model installs it)
    corrupt_model: str         # malformed GGUF bytes
    unsupported_model: str     # well-formed GGUF with an architecture no runtime runs
    missing_model: str         # a path that does not exist
    n_ctx: int = 128
    n_threads: int = 1
    prompt: str = "Once upon a time"
    long_prompt: str = ""      # more tokens than n_ctx
    generate_tokens: int = 4
    long_generation: int = 64  # a generate that runs while another call waits (fits in n_ctx after the prompt)
    fill_tokens: int = 4096    # asks for more tokens than the suite's context holds, so the context fills
    # The context of the cases whose cancel must land while a generate runs (0: n_ctx). Their generate
    # asks for the whole context, so it lasts long enough for a cancel to cross a pipe when the
    # implementation cannot pause (protocol `pause_after`); a cancel that lands costs only the tokens made
    # meanwhile. A tiny model needs a long one (conformance.inputs).
    cancel_n_ctx: int = 0
    # A prompt whose greedy continuation reaches an end-of-generation token within eos_within tokens (the
    # kit's fixtures know one; None: the suite cannot ask for finish_reason "stop").
    eos_prompt: str | list[int] | None = None
    eos_within: int = 8
    n_vocab: int | None = None        # the model's vocabulary size (None: the token-id edges are not tried)
    probe_tokens: int = 4             # tokens a probe generates to see whether settings reached a request
    # A model of finite weights whose forward overflows float32 on one token ("": the logits_finite=false
    # cases are not supported), a prompt whose last position's logits overflow on it, and a prompt whose
    # greedy next token is that one (its next forward overflows).
    overflow_model: str = ""
    overflow_prompt: str | list[int] | None = None
    before_overflow_prompt: str | list[int] | None = None

    def __post_init__(self) -> None:
        if not self.long_prompt:
            object.__setattr__(self, "long_prompt", overlong_prompt(self.n_ctx))

    def cancel_inputs(self) -> SuiteInputs:
        """The inputs of the cases a cancel must land in: the same files, the cancel context, and a
        generate that asks for all of it (it ends when cancelled, or when the context is full)."""
        n_ctx = self.cancel_n_ctx or self.n_ctx
        long_prompt = overlong_prompt(n_ctx) if self.long_prompt == overlong_prompt(self.n_ctx) else self.long_prompt
        return replace(self, n_ctx=n_ctx, cancel_n_ctx=n_ctx, long_prompt=long_prompt, long_generation=n_ctx)

    @property
    def init_args(self) -> dict[str, Any]:
        return {"n_ctx": self.n_ctx, "n_threads": self.n_threads}

    def describe(self) -> dict[str, Any]:
        names = ("model", "alt_model", "corrupt_model", "unsupported_model", "missing_model", "n_ctx", "n_threads",
                 "prompt", "cancel_n_ctx", "eos_prompt", "n_vocab", "overflow_model", "overflow_prompt",
                 "before_overflow_prompt")
        return {name: getattr(self, name) for name in names}


def overlong_prompt(n_ctx: int) -> str:
    """A prompt of more tokens than n_ctx: distinct words, so no tokenizer merges them into fewer."""
    return " ".join(f"word{index} and" for index in range(n_ctx * 4))


@dataclass(frozen=True)
class Action:
    """One operation with its arguments (the protocol's), and how a generate with them ends when it runs;
    a load or replace names which of the suite's inputs it installs."""

    op: Operation
    args: Mapping[str, Any] = field(default_factory=dict)
    ends: FinishReason | None = None
    installs: str | None = None       # "model" or "alt_model": the SuiteInputs field of the file it loads


class FileChange(str, Enum):
    """How the kit changes the model file a runtime has loaded, between two of its calls (model_intact false)."""

    truncate = "truncate"     # cut in place to half its size: the pages past the new end are gone
    overwrite = "overwrite"   # opened with O_TRUNC and written again, as `cp OTHER FILE` does: the same inode,
    #                           the bytes of the suite's other model

    def __str__(self) -> str:
        return self.value

    def describe(self) -> str:
        return ("truncated in place to half its size" if self == FileChange.truncate
                else "rewritten in place (O_TRUNC, then written, as cp does) with the other model's bytes")


# Every way the kit changes a loaded file: the first is a branch's case, the others its variants.
FILE_CHANGES = tuple(FileChange)


@dataclass(frozen=True)
class Arrangement:
    """What makes a branch's guards hold: calls made first, the call, a cancel sent while it runs, and a
    change the kit makes to the loaded model's file just before the call."""

    action: Action
    setup: tuple[Action, ...] = ()
    cancel_at_first_token: bool = False
    change_file: FileChange | None = None
    runs_on: str | None = None    # the SuiteInputs field whose file the whole case uses where it names `model`

    @property
    def plain(self) -> bool:
        """One call on its own: nothing before it, nothing beside it, no file changed or swapped under it."""
        return not (self.setup or self.cancel_at_first_token or self.change_file or self.runs_on)


def with_natural_values(needed: frozenset[str] | set[str], chosen: Mapping[str, bool]) -> dict[str, bool]:
    """A full guard assignment for the names in `needed`: the chosen values, natural ones elsewhere."""
    return {name: chosen.get(name, NATURAL_VALUES[Guard(name)]) for name in needed}


def realize(op: str, guards: Mapping[str, bool], inputs: SuiteInputs) -> Arrangement:
    """The calls that make `guards` hold for `op` (guards it does not name take natural values)."""

    def value(guard: Guard) -> bool:
        return guards.get(guard, NATURAL_VALUES[guard])

    operation = Operation(op)
    if Guard.model_intact in guards and not value(Guard.model_intact):
        natural = realize(op, {**guards, Guard.model_intact: True}, inputs)
        # The call fails, so it does not end as a generate would.
        return replace(natural, action=replace(natural.action, ends=None), change_file=FILE_CHANGES[0])
    if Guard.logits_finite in guards and not value(Guard.logits_finite):
        return _overflowing(operation, inputs)
    if operation == Operation.init_runtime:
        args = inputs.init_args if value(Guard.config_valid) else {**inputs.init_args, "n_ctx": -1}
        return Arrangement(Action(operation, args))
    if operation in (Operation.load_model, Operation.replace_model):
        name = _model_input(operation, value)
        return Arrangement(Action(operation, {"path": getattr(inputs, name)}, installs=name))
    if operation == Operation.set_sampling:
        return Arrangement(Action(operation, dict(GREEDY if value(Guard.sampling_valid) else INVALID_SAMPLING)))
    if operation == Operation.generate:
        return _generate(value, inputs)
    if operation == Operation.generate_next_token:
        return Arrangement(Action(operation, {}), setup=() if value(Guard.context_left) else (fill_context(inputs),))
    return Arrangement(Action(operation, {}))


def _generate(value: Any, inputs: SuiteInputs) -> Arrangement:
    if value(Guard.cancelled):
        return Arrangement(running_generate(inputs, cancelled=True), cancel_at_first_token=True)
    return Arrangement(Action(Operation.generate, {
        "prompt": inputs.prompt if value(Guard.prompt_fits) else inputs.long_prompt,
        "max_tokens": inputs.generate_tokens if value(Guard.input_valid) else -1,
        "stop_at_eos": False,
        "sampling": dict(GREEDY if value(Guard.sampling_valid) else INVALID_SAMPLING),
    }, ends=FinishReason.length))


def _overflowing(operation: Operation, inputs: SuiteInputs) -> Arrangement:
    """logits_finite false: the case runs on the overflow model; its call is the first to sample non-finite logits."""
    greedy = {"stop_at_eos": False, "sampling": dict(GREEDY)}
    if operation == Operation.generate:
        return Arrangement(Action(operation, {"prompt": inputs.overflow_prompt, "max_tokens": inputs.generate_tokens,
                                              **greedy}), runs_on="overflow_model")
    before = Action(Operation.generate, {"prompt": inputs.before_overflow_prompt, "max_tokens": 1, **greedy},
                    ends=FinishReason.length)
    return Arrangement(Action(operation, {}), setup=(before,), runs_on="overflow_model")


def _model_input(op: Operation, value: Any) -> str:
    """The SuiteInputs field of the file a load or replace is given."""
    if not value(Guard.model_readable):
        return "missing_model"
    if not value(Guard.model_well_formed):
        return "corrupt_model"
    if not value(Guard.model_supported):
        return "unsupported_model"
    return "alt_model" if op == Operation.replace_model else "model"


def fill_context(inputs: SuiteInputs) -> Action:
    """The generate that fills the context before a context_left=false case."""
    return Action(Operation.generate, {"prompt": inputs.prompt, "max_tokens": inputs.fill_tokens, "stop_at_eos": False,
                                       "sampling": dict(GREEDY)}, ends=FinishReason.context)


def running_generate(inputs: SuiteInputs, *, cancelled: bool = False) -> Action:
    """A generate that runs long enough for another call to arrive while it runs (Generating cells,
    and the cancel cases, whose inputs make it ask for the whole cancel context)."""
    return Action(Operation.generate, {"prompt": inputs.prompt, "max_tokens": inputs.long_generation,
                                       "stop_at_eos": False, "sampling": dict(GREEDY)},
                  ends=FinishReason.cancelled if cancelled else FinishReason.length)
