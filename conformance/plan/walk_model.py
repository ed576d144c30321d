"""The random walk's table side: the choices it draws, and what it knows of the runtime it drives.

A walk is a sequence of operations, each with a recipe choice: natural
inputs, or one guard turned the other way (a missing file, a corrupt model,
temperature=-1, ...: the choices come from the guards the operation's cells
use), or a generate that fills the context. :class:`WalkModel` tracks what
the table needs to predict the next outcome (the node, and what the table
cannot see: whether the walk configured the context, whether it is full) and
gives each call its expected outcome. ``run.walk`` drives an implementation
with it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from ggufsm.conformance.plan.expected import Expected, Trace, expected_of
from ggufsm.conformance.plan.paths import Node, Planner
from ggufsm.conformance.plan.recipes import (
    INTERRUPTS,
    NATURAL_VALUES,
    Arrangement,
    SuiteInputs,
    fill_context,
    realize,
    with_natural_values,
)
from ggufsm.spec import Branch, Spec
from ggufsm.spec.names import Guard, Operation, State

NATURAL, FILL_CONTEXT = "natural", "fill_context"
# Guards a walk never turns: the cell cases take their other value, each on a file of its own (a private
# copy of the model changed under the runtime, or the overflow model): a walk loads the suite's shared
# files, and a file changed under one runtime would change the outcome of every later load of it.
WALK_KEEPS_NATURAL = (Guard.model_intact, Guard.logits_finite)
# Guards a walk does not choose: they follow from what the walk already did.
DERIVED_GUARDS = (Guard.model_resident, Guard.context_left, *WALK_KEEPS_NATURAL)
STEPS_PER_WALK = 25
NATURAL_WEIGHT = 3


def guard_choice(guard: Guard, value: bool) -> str:
    return f"{guard}={'true' if value else 'false'}"


# Choices that depend on the context size the walk configured (not a lazily initialised default).
NEEDS_CONFIGURED_CONTEXT = (guard_choice(Guard.prompt_fits, False), FILL_CONTEXT)


def choices_for(spec: Spec, op: str, operations: Iterable[str]) -> list[str]:
    """"natural", then one choice per guard value the op's cells can be given by a recipe."""
    available = set(operations)
    derived = set(DERIVED_GUARDS) | {guard for control, guard in INTERRUPTS.items() if control not in available}
    guards = sorted({guard for state in spec.states for guard in spec.guards_for(state, op)} - derived)
    choices = [NATURAL] + [guard_choice(Guard(guard), not NATURAL_VALUES[Guard(guard)]) for guard in guards]
    if op == Operation.generate:
        choices.append(FILL_CONTEXT)
    return choices


def weighted(choices: list[str]) -> list[str]:
    """Natural inputs most of the time, so walks get past the first error into the deeper states."""
    return [NATURAL] * NATURAL_WEIGHT * max(1, len(choices) - 1) + choices[1:]


def chosen_guards(choice: str) -> dict[str, bool]:
    if choice in (NATURAL, FILL_CONTEXT):
        return {}
    guard, value = choice.split("=")
    return {Guard(guard): value == "true"}


@dataclass
class WalkModel:
    """What the walk knows of the runtime it drives."""

    node: Node
    configured: bool = False      # init_runtime gave the suite's n_ctx (not a lazy default)
    context_full: bool = False
    trace: Trace = field(default_factory=Trace)   # what the effects so far left (last_error, model, request)

    @classmethod
    def fresh(cls, spec: Spec) -> WalkModel:
        return cls(Node(State(spec.initial_state), False))

    def effective(self, choice: str) -> str:
        return NATURAL if choice in NEEDS_CONFIGURED_CONTEXT and not self.configured else choice

    def arrange(self, op: str, choice: str, inputs: SuiteInputs) -> Arrangement:
        """The call for `choice` (already `effective`). Guards the walk does not choose are what they
        are; a recipe's set-up calls are not made (a full context is reached by filling it)."""
        if choice == FILL_CONTEXT:
            return Arrangement(fill_context(inputs))
        arrangement = realize(op, chosen_guards(choice), inputs)
        return Arrangement(arrangement.action, cancel_at_first_token=arrangement.cancel_at_first_token)

    def expect(self, spec: Spec, op: str, choice: str, arrangement: Arrangement,
               cancel_landed: bool) -> tuple[Branch, Expected]:
        """The branch the call takes and its expected outcome, once it is known whether a cancel landed."""
        chosen = chosen_guards(choice) | {Guard.model_resident: self.node.model_resident,
                                          Guard.context_left: not self.context_full}
        guards = with_natural_values(spec.guards_for(self.node.state, op), chosen)
        for guard in INTERRUPTS.values():
            if guard in guards:
                guards[guard] = cancel_landed
        branch = spec.branch(self.node.state, op, guards)
        # A cancel that did not land leaves a generate whose end the recipe does not decide.
        ends = arrangement.action.ends if cancel_landed or not arrangement.cancel_at_first_token else None
        action = arrangement.action
        n_ctx = action.args.get("n_ctx") if op == Operation.init_runtime else None
        return branch, expected_of(spec, branch, self.trace, ends, action.installs, n_ctx)

    def advance(self, spec: Spec, op: str, choice: str, branch: Branch, expected: Expected) -> None:
        if op == Operation.init_runtime and expected.error is None:
            self.configured = True
        if branch.outcome.lazy_init:
            self.configured = False
        keeps_request = (spec.operations[op].kind != "command"
                         or (op == Operation.set_sampling and expected.error is None))
        if choice == FILL_CONTEXT and expected.error is None:
            self.context_full = True   # the check held the generate to finish_reason "context"
        elif not keeps_request:
            self.context_full = False
        self.node = Node(expected.to, expected.model_resident)
        assert expected.after is not None
        self.trace = expected.after


# ─── coverage ────────────────────────────────────────────────────────────────


def walk_triples(spec: Spec, operations: Iterable[str]) -> list[str]:
    """What the walk must cover: every (state, operation, guard values) the table allows in a stable
    state, as the source of its branch, for the operations the implementation has (a branch that
    needs a cancel to land needs cancel too), less those a walk never takes (WALK_KEEPS_NATURAL)."""
    available = set(operations)
    needs = {guard: control for control, guard in INTERRUPTS.items()}
    return [branch.source for branch in spec.all_branches()
            if not spec.states[branch.state].transient and branch.operation in available
            and all(needs[Guard(guard)] in available for guard, value in branch.conditions if value and guard in needs)
            and all(value == NATURAL_VALUES[Guard(guard)] for guard, value in branch.conditions
                    if guard in WALK_KEEPS_NATURAL)]


def choice_for(branch: Branch) -> str:
    """The walk choice that makes a branch's chosen guards hold (the derived ones follow from the walk)."""
    chosen = [(guard, value) for guard, value in branch.conditions
              if guard not in DERIVED_GUARDS and value != NATURAL_VALUES[Guard(guard)]]
    return guard_choice(Guard(chosen[0][0]), chosen[0][1]) if chosen else NATURAL


def route_to(spec: Spec, planner: Planner, branch: Branch) -> list[tuple[str, str]] | None:
    """(operation, choice) from a fresh runtime to `branch` taken: the shortest path to its state
    (with or without a model, as its conditions say), a generate that fills the context where it
    needs none left, then the branch's own call. None if no path reaches it."""
    wanted = dict(branch.conditions).get(Guard.model_resident)
    for resident in (False, True):
        if wanted is not None and wanted != resident:
            continue
        path = planner.path_to(Node(State(branch.state), resident))
        if path is None:
            continue
        sources = {entry.source: entry for entry in spec.all_branches()}
        route = [(step.action.op, choice_for(sources[step.rule])) for step in path]
        if dict(branch.conditions).get(Guard.context_left) is False:
            route.append((Operation.generate, FILL_CONTEXT))
        return [*route, (branch.operation, choice_for(branch))]
    return None


def reproduction(steps: list[dict[str, Any]]) -> str:
    """The walk as protocol requests (docs/protocol.md), to send one at a time to a fresh runtime.
    A cancelled generate streams, and its cancel is sent after the first token event."""
    lines = [f"minimal sequence from a fresh runtime ({len(steps)} operations), as protocol requests "
             "(send each after the previous answer):"]
    for number, step in enumerate(steps, 1):
        if step.get("cancel_at_first_token"):
            lines.append(json.dumps({"id": number, "op": step["op"], "args": {**step["args"], "stream": True}}))
            lines.append(json.dumps({"id": f"{number}-cancel", "op": Operation.cancel, "args": {}})
                         + "   # sent after the first token event, while the generate runs")
        else:
            lines.append(json.dumps({"id": number, "op": step["op"], "args": step["args"]}))
    return "\n".join(lines)
