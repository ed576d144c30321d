"""Recipes: how each guard value of the table is produced with concrete inputs.

The table says *when* an outcome applies (guard values); a conformance case
must make those guards hold on a real implementation. Each guard has a recipe
per value: a missing path makes ``model_readable`` false, ``temperature=-1``
makes ``sampling_valid`` false, and so on. ``model_resident`` has no recipe:
it is a property of how the state was reached, so the planner picks a path
that leaves the model resident or not.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Mapping

# What each guard value means in inputs, for reports and docs.
RECIPES: Mapping[str, Mapping[bool, str]] = MappingProxyType({
    "config_valid": {True: "init_runtime(n_ctx=<suite n_ctx>)", False: "init_runtime(n_ctx=-1)"},
    "model_resident": {True: "reached by a path that leaves a model installed",
                       False: "reached by a path that installs none (or frees it)"},
    "model_readable": {True: "an existing file", False: "a path that does not exist"},
    "model_well_formed": {True: "a well-formed GGUF file", False: "a corrupt GGUF file"},
    "model_supported": {True: "the suite's model", False: "a well-formed GGUF file with an unknown architecture"},
    "sampling_valid": {True: "temperature=0 (greedy)", False: "temperature=-1"},
    "input_valid": {True: "a short prompt, max_tokens >= 0", False: "max_tokens=-1"},
    "prompt_fits": {True: "a short prompt", False: "a prompt longer than the context (n_ctx)"},
    "context_left": {True: "a request with room left", False: "a generate that filled the whole context first"},
    "cancelled": {False: "no cancel",
                  True: "cancel() from another thread while a generate that fills a cancel_n_ctx context runs"},
})

# The value a guard takes when a case does not ask for a particular one.
NATURAL_VALUES: Mapping[str, bool] = MappingProxyType({name: name != "cancelled" for name in RECIPES})

GREEDY = MappingProxyType({"temperature": 0.0})
INVALID_SAMPLING = MappingProxyType({"temperature": -1.0})


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
    # asks for the whole context, so it lasts long enough for a cancel to cross a pipe; a cancel that
    # lands costs only the tokens made meanwhile. A tiny model needs a long one (conformance.inputs).
    cancel_n_ctx: int = 0

    def __post_init__(self):
        if not self.long_prompt:
            object.__setattr__(self, "long_prompt", overlong_prompt(self.n_ctx))

    def cancel_inputs(self) -> SuiteInputs:
        """The inputs of the cases a cancel must land in: the same files, the cancel context, and a
        generate that asks for all of it (it ends when cancelled, or when the context is full)."""
        n_ctx = self.cancel_n_ctx or self.n_ctx
        long_prompt = overlong_prompt(n_ctx) if self.long_prompt == overlong_prompt(self.n_ctx) else self.long_prompt
        return replace(self, n_ctx=n_ctx, cancel_n_ctx=n_ctx, long_prompt=long_prompt, long_generation=n_ctx)

    @property
    def init_args(self) -> dict:
        return {"n_ctx": self.n_ctx, "n_threads": self.n_threads}

    def describe(self) -> dict:
        return {name: getattr(self, name) for name in ("model", "alt_model", "corrupt_model", "unsupported_model",
                                                        "missing_model", "n_ctx", "n_threads", "prompt", "cancel_n_ctx")}


def overlong_prompt(n_ctx: int) -> str:
    """A prompt of more tokens than n_ctx: distinct words, so no tokenizer merges them into fewer."""
    return " ".join(f"word{index} and" for index in range(n_ctx * 4))


@dataclass(frozen=True)
class Action:
    """One operation with its arguments, and what must happen around it to make its guards hold."""

    op: str
    args: Mapping = field(default_factory=dict)
    fill_context_first: bool = False       # context_left=false: a generate fills the context first
    cancel_while_running: bool = False     # cancelled=true: cancel() from another thread mid-generate

    @property
    def plain(self) -> bool:
        return not (self.fill_context_first or self.cancel_while_running)

    def to_json(self) -> dict:
        extra = {"fill_context_first": True} if self.fill_context_first else {}
        extra |= {"cancel_while_running": True} if self.cancel_while_running else {}
        return {"op": self.op, "args": dict(self.args), **extra}


def with_natural_values(needed, chosen: Mapping[str, bool]) -> dict[str, bool]:
    """A full guard assignment for the names in `needed`: the chosen values, natural ones elsewhere."""
    return {name: chosen.get(name, NATURAL_VALUES[name]) for name in needed}


def realize(op: str, guards: Mapping[str, bool], inputs: SuiteInputs) -> Action:
    """The concrete call that makes `guards` hold for `op` (guards it does not name take natural values)."""
    value = lambda name: guards.get(name, NATURAL_VALUES[name])  # noqa: E731
    if op == "init_runtime":
        return Action(op, inputs.init_args if value("config_valid") else {**inputs.init_args, "n_ctx": -1})
    if op in ("load_model", "replace_model"):
        return Action(op, {"path": _model_path(op, value, inputs)})
    if op == "set_sampling":
        return Action(op, dict(GREEDY if value("sampling_valid") else INVALID_SAMPLING))
    if op == "generate":
        cancelled = value("cancelled")
        return Action(op, {
            "prompt": inputs.prompt if value("prompt_fits") else inputs.long_prompt,
            "max_tokens": -1 if not value("input_valid") else (inputs.long_generation if cancelled else inputs.generate_tokens),
            "stop_at_eos": False,
            "sampling": dict(GREEDY if value("sampling_valid") else INVALID_SAMPLING),
        }, cancel_while_running=cancelled)
    if op == "generate_next_token":
        return Action(op, {}, fill_context_first=not value("context_left"))
    return Action(op, {})


def _model_path(op: str, value, inputs: SuiteInputs) -> str:
    if not value("model_readable"):
        return inputs.missing_model
    if not value("model_well_formed"):
        return inputs.corrupt_model
    if not value("model_supported"):
        return inputs.unsupported_model
    return inputs.alt_model if op == "replace_model" else inputs.model


def fill_context(inputs: SuiteInputs) -> Action:
    """The generate that fills the context before a context_left=false case."""
    return Action("generate", {"prompt": inputs.prompt, "max_tokens": inputs.fill_tokens, "stop_at_eos": False,
                               "sampling": dict(GREEDY)})


def long_generate(inputs: SuiteInputs) -> Action:
    """A generate that runs long enough for another call to arrive while it runs (Generating cells)."""
    return Action("generate", {"prompt": inputs.prompt, "max_tokens": inputs.long_generation, "stop_at_eos": False,
                               "sampling": dict(GREEDY)})
