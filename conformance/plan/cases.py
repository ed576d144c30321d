"""The table-derived suite: one case for every branch of every (state, operation) cell.

Nothing here lists a state, an operation or an outcome: the planner walks the
table. For each branch it

1. picks the guard values the branch needs (natural values for the rest) and
   turns them into concrete calls with the recipes (``plan.recipes``);
2. reaches the branch's state by a shortest path from a fresh runtime
   (``plan.paths``), followed by the recipe's set-up calls (a generate that
   fills the context);
3. states the call and the outcome it must have (``plan.expected``).

Transient states (Loading, Generating) cannot be stood in: their cells are
checked by concurrency (:class:`CallWhileRunning`): start the operation that
enters the state, make the call while it runs, and expect it to wait and then
apply in the state the running operation left (or, for queries and cancel,
to answer at once). A branch that needs a cancel to land in a running
generate is a :class:`CancelWhileCallRuns`.

A branch where the loaded model's file has changed (``model_intact`` false)
is a case with a :class:`ModelFileChange`: it runs on a private copy of the
file, which the kit changes after the path and before the call; its variants
change it the other ways (``recipes.FILE_CHANGES``).

The cases that prove what a cancel does to a running generate are planned with
the cancel inputs (``SuiteInputs.cancel_inputs``): a longer context and a
generate that asks for all of it, so it still runs when a cancel sent at its
first token arrives, even over a pipe.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from enum import Enum
from typing import Any

from ggufsm.conformance.plan.boundaries import EdgeValue, edge_values
from ggufsm.conformance.plan.expected import expected_of
from ggufsm.conformance.plan.paths import Node, Planner, Step, branch_guards, make_step, setup_steps
from ggufsm.conformance.plan.recipes import (
    FILE_CHANGES,
    INTERRUPTS,
    NATURAL_VALUES,
    PROBE_SAMPLING,
    Action,
    Arrangement,
    FileChange,
    SuiteInputs,
    realize,
    running_generate,
)
from ggufsm.spec import Branch, Spec
from ggufsm.spec.names import (
    EffectField,
    ErrorCode,
    FinishReason,
    Guard,
    Operation,
    RequestEffect,
    SamplingEffect,
    State,
)

Transition = tuple[State, Operation, State, ErrorCode | None]


class Trigger(str, Enum):
    """When the second of two overlapping calls is sent."""

    first_token = "first_token"            # at the first token event of the running generate
    state_observed = "state_observed"      # once the state query answers the transient state

    def __str__(self) -> str:
        return self.value

    def describe(self, state: str) -> str:
        return "at its first token" if self == Trigger.first_token else f"once the state query answers {state}"


@dataclass(frozen=True)
class CallWhileRunning:
    """A transient state's cell: `running` enters the state, and the case's call is sent while it runs.
    If `call_waits`, the call must wait for `running` and then apply in the state it leaves (the
    call's step starts there); otherwise it answers at once, in the transient state."""

    running: Step
    send_call_at: Trigger
    call_waits: bool


@dataclass(frozen=True)
class CancelWhileCallRuns:
    """A branch where a cancel lands in the case's own generate: `cancel` is sent at its first token."""

    cancel: Step
    send_cancel_at: Trigger = Trigger.first_token


Concurrency = CallWhileRunning | CancelWhileCallRuns


@dataclass(frozen=True)
class ModelFileChange:
    """The case runs on a private copy of the suite's `file` (every argument naming that file names the
    copy), and the kit changes the copy `how` after the path, just before the call."""

    file: str            # the SuiteInputs field of the file the runtime has loaded: "model" or "alt_model"
    how: FileChange

    def describe(self) -> str:
        return f"the kit's private copy of <{self.file}>, which the runtime has loaded, is {self.how.describe()}"


class Probe(str, Enum):
    """Calls made after a case's call, to see an effect that only outputs show."""

    # One generate_next_token gives the greedy continuation of the open request (a longer greedy generate
    # of the same prompt, made afterwards on the same handle, says what it is): the request and its KV
    # state were kept, extended or, after a cancel, hold exactly the tokens the generate produced.
    continues_request = "continues_request"
    # The call set hot sampling with a greedy request open: the next tokens are not the greedy continuation.
    sampling_reaches_open_request = "sampling_reaches_open_request"
    # The call set sampling: a generate without sampling of its own equals one given the same settings
    # (a load comes first where no model is installed).
    sampling_applies_to_next_request = "sampling_applies_to_next_request"
    # After a file change: another runtime (a second handle where the implementation has them) loads the
    # suite's own, intact model and generates; the changed one did not take the process or the others down.
    other_handle_carries_on = "other_handle_carries_on"
    # After a file change: free on the case's runtime succeeds and leaves it Freed.
    free_after_file_change = "free_after_file_change"

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class CasePlan:
    id: str
    state: State
    op: Operation
    conditions: tuple[tuple[Guard, bool], ...]
    rule: str                       # the table branch it checks, e.g. "cells.Ready.generate.cases[2]"
    effect: str
    path: tuple[Step, ...]          # from a fresh runtime to the cell's state (a stable one: where `running` starts)
    call: Step
    concurrency: Concurrency | None = None
    variant: str = ""               # an edge value the call tries ("sampling.top_p=1.01"), or "eos", "past_eos"
    probes: tuple[Probe, ...] = ()
    file_change: ModelFileChange | None = None
    runs_on: str | None = None      # the input whose file the case uses wherever it names `model` (overflow_model)

    @property
    def cell(self) -> str:
        return f"{self.state}.{self.op}"

    @property
    def operations(self) -> frozenset[Operation]:
        """Every operation the case calls."""
        steps = [*self.path, self.call, *self._concurrent_steps()]
        return frozenset(step.action.op for step in steps)

    @property
    def transitions(self) -> tuple[Transition, ...]:
        """The table transitions this case exercises: the call's, and where calls overlap, the other
        call's too; a call that waits also exercises its own cell's (state, operation, same state)."""
        exercised = tuple(step.transition for step in (self.call, *self._concurrent_steps()))
        if isinstance(self.concurrency, CallWhileRunning) and self.concurrency.call_waits:
            return ((self.state, self.op, self.state, None), *exercised)
        return exercised

    def _concurrent_steps(self) -> tuple[Step, ...]:
        if isinstance(self.concurrency, CallWhileRunning):
            return (self.concurrency.running,)
        if isinstance(self.concurrency, CancelWhileCallRuns):
            return (self.concurrency.cancel,)
        return ()

    def describe(self) -> list[str]:
        lines = [f"{step.start.state}: {step.action.op}({_args_text(step.action)}) → {step.expected.describe()}"
                 for step in self.path]
        concurrency = self.concurrency
        if isinstance(concurrency, CallWhileRunning):
            running = concurrency.running.action
            lines.append(f"run {running.op}({_args_text(running)}) → {concurrency.running.expected.describe()}; "
                         f"{concurrency.send_call_at.describe(self.state)}, "
                         + ("waiting for it:" if concurrency.call_waits else "answered at once:"))
        if self.runs_on is not None:
            lines.insert(0, f"(the case runs on <{self.runs_on}> wherever it names <model>)")
        if self.file_change is not None:
            lines.append(f"then {self.file_change.describe()}")
        call = f"{self.state}: {self.op}({_args_text(self.call.action)})"
        if isinstance(concurrency, CancelWhileCallRuns):
            call += (f" [{concurrency.cancel.action.op}() from another thread, "
                     f"{concurrency.send_cancel_at.describe(concurrency.cancel.start.state)}]")
        lines.append(f"{call} → expect {self.call.expected.describe()}")
        changes = self.call.expected.changes()
        if changes:
            lines.append("effects: " + ", ".join(f"{name} {value}" for name, value in changes.items()))
        lines += [f"probe: {probe}" for probe in self.probes]
        return lines


def _args_text(action: Action) -> str:
    return ", ".join(f"{key}={_short(value)}" for key, value in action.args.items())


def _short(value: Any, limit: int = 48) -> str:
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit - 12]}…<{len(text)} chars>"


# What a case that runs on another input's file needs of it, for the report when the inputs name none.
RECIPES_NEEDING = {"overflow_model": "a model of finite weights whose forward overflows float32 on one token "
                                     "(with overflow_prompt and before_overflow_prompt); the kit writes one "
                                     "(conformance/fixtures/overflow.py)"}


@dataclass(frozen=True)
class Unreachable:
    """A branch no case can reach with the implementation's operations, and why."""

    id: str
    cell: str
    rule: str
    why: str

    def to_json(self) -> dict[str, str]:
        return {"id": self.id, "cell": self.cell, "rule": self.rule, "why": self.why}


def plan_suite(spec: Spec, inputs: SuiteInputs,
               operations: Iterable[str] | None = None) -> tuple[list[CasePlan], list[Unreachable]]:
    """Every branch's case, and the branches no case can reach with these operations (with why)."""
    planner = Planner(spec, inputs, operations)
    cancel_planner = Planner(spec, inputs.cancel_inputs(), operations)
    interruptible = _interruptible_states(spec)
    plans: list[CasePlan] = []
    unreachable: list[Unreachable] = []
    variants = _variants(spec, planner)
    for state, entry in spec.states.items():
        for op in spec.operations:
            for branch in spec.branches(state, op):
                # Cases that prove what a cancel does to a running generate: the generate must still be
                # running when the cancel arrives, even over a pipe, so they are planned with the cancel inputs.
                interrupted = any(dict(branch.conditions).get(guard) for guard in INTERRUPTS.values())
                cancel_must_land = interrupted or (state in interruptible and op in INTERRUPTS)
                chosen = cancel_planner if cancel_must_land else planner
                plan = _plan_transient(spec, chosen, branch) if entry.transient else _plan_stable(spec, chosen, branch)
                if not isinstance(plan, CasePlan):
                    unreachable.append(Unreachable(case_id(branch), f"{state}.{op}", branch.source, plan))
                    continue
                plans.append(plan)
                for variant in [*variants.get(branch.source, ()), *_file_change_variants(plan)]:
                    planned = _plan_stable(spec, chosen, branch, variant)
                    if isinstance(planned, CasePlan):
                        plans.append(planned)
    return plans, unreachable


@dataclass(frozen=True)
class Variant:
    """One variant of a branch's case: its label, and how its call differs from the natural one (the
    guard it tests is made by the edge value alone, every other argument natural)."""

    label: str
    guard: Guard | None
    vary: Callable[[Arrangement], Arrangement]


def _variants(spec: Spec, planner: Planner) -> dict[str, list[Variant]]:
    """The variants of each branch, by its source: every edge value of the table's ranges in the
    representative cell of its guard and operation, and the end-of-generation requests."""
    inputs = planner.inputs
    found: dict[str, list[Variant]] = {}
    for edge in edge_values(spec, n_ctx=inputs.n_ctx, n_vocab=inputs.n_vocab):
        branch = _representative_branch(spec, planner, edge)
        if branch is not None:
            found.setdefault(branch.source, []).append(Variant(edge.label, edge.guard, _with_edge(edge)))
    if inputs.eos_prompt is not None:
        natural = _representative_branch(spec, planner, None)
        if natural is not None:
            found.setdefault(natural.source, []).extend([Variant("eos", None, _ending_at_eos(inputs, stop=True)),
                                                         Variant("past_eos", None, _ending_at_eos(inputs, stop=False))])
    return found


def _file_change_variants(plan: CasePlan) -> list[Variant]:
    """A file-change case's variants: the loaded file changed each of the other ways."""
    if plan.file_change is None:
        return []
    return [Variant(str(how), None, _changing_file(how)) for how in FILE_CHANGES if how != plan.file_change.how]


def _changing_file(how: FileChange) -> Callable[[Arrangement], Arrangement]:
    def vary(arrangement: Arrangement) -> Arrangement:
        return replace(arrangement, change_file=how)
    return vary


def _representative_branch(spec: Spec, planner: Planner, edge: EdgeValue | None) -> Branch | None:
    """The branch an edge value varies: in the first state (table order) a plain path reaches where the
    operation decides on the guard, the branch where the guard is what the value makes it and every
    other guard is natural. Without an edge: the first successful generate that runs."""
    op = edge.operation if edge is not None else Operation.generate
    for state, entry in spec.states.items():
        if entry.transient or not any(planner.path_to(Node(State(state), resident)) is not None
                                      for resident in (False, True)):
            continue
        for branch in spec.branches(state, op):
            outcome = branch.outcome
            if outcome.lazy_init and planner.explicit_init:
                continue
            when = dict(branch.conditions)
            if edge is None:
                if outcome.error is None and outcome.via is not None and not any(
                        when.get(guard) for guard in INTERRUPTS.values()):
                    return branch
                continue
            if edge.guard in when and when[edge.guard] == edge.in_range and _otherwise_natural(when, edge.guard):
                return branch
    return None


def _otherwise_natural(when: dict[str, bool], guard: str) -> bool:
    return all(value == NATURAL_VALUES[Guard(name)] for name, value in when.items()
               if name != guard and name != Guard.model_resident)


def _with_edge(edge: EdgeValue) -> Callable[[Arrangement], Arrangement]:
    def vary(arrangement: Arrangement) -> Arrangement:
        action = arrangement.action
        ends = edge.ends if action.op == Operation.generate else action.ends
        return replace(arrangement, action=replace(action, args=edge.apply(dict(action.args)), ends=ends))
    return vary


def _ending_at_eos(inputs: SuiteInputs, *, stop: bool) -> Callable[[Arrangement], Arrangement]:
    """A generate of the prompt that reaches an end-of-generation token: with stop_at_eos it ends
    there ("stop"); without, it goes on to max_tokens ("length")."""
    def vary(arrangement: Arrangement) -> Arrangement:
        args = {**arrangement.action.args, "prompt": inputs.eos_prompt, "max_tokens": inputs.eos_within,
                "stop_at_eos": stop}
        ends = FinishReason.stop if stop else FinishReason.length
        return replace(arrangement, action=replace(arrangement.action, args=args, ends=ends))
    return vary


def _interruptible_states(spec: Spec) -> set[str]:
    """The transient states of the commands an interrupt can land in (a cancel in Generating)."""
    interrupt_guards = set(INTERRUPTS.values())
    return {branch.outcome.via for branch in spec.all_branches()
            if branch.outcome.via and interrupt_guards & set(dict(branch.conditions))}


def case_id(branch: Branch, variant: str = "") -> str:
    conditions = ",".join(f"{name}={'true' if value else 'false'}" for name, value in branch.conditions)
    return f"{branch.state}.{branch.operation}" + (f"[{conditions}]" if conditions else "") + \
        (f"@{variant}" if variant else "")


def _new_plan(branch: Branch, path: tuple[Step, ...], call: Step, concurrency: Concurrency | None = None,
              variant: str = "", probes: tuple[Probe, ...] = (), file_change: ModelFileChange | None = None,
              runs_on: str | None = None) -> CasePlan:
    return CasePlan(case_id(branch, variant), State(branch.state), Operation(branch.operation),
                    tuple((Guard(name), value) for name, value in branch.conditions), branch.source,
                    branch.outcome.effect, path, call, concurrency, variant, probes, file_change, runs_on)


def _plan_stable(spec: Spec, planner: Planner, branch: Branch, variant: Variant | None = None) -> CasePlan | str:
    wanted = dict(branch.conditions).get(Guard.model_resident)
    for resident in (False, True):
        if wanted is not None and wanted != resident:
            continue
        node = Node(State(branch.state), resident)
        path = planner.path_to(node)
        if path is None:
            continue
        guards = branch_guards(spec, node, branch.operation, branch.conditions)
        assert guards is not None
        if variant is None:
            arrangement = realize(branch.operation, guards, planner.inputs)
        else:   # the edge value alone makes its guard what the branch says: every other argument natural
            natural = {**guards, variant.guard: NATURAL_VALUES[variant.guard]} if variant.guard else guards
            arrangement = variant.vary(realize(branch.operation, natural, planner.inputs))
        if arrangement.runs_on is not None and not getattr(planner.inputs, arrangement.runs_on):
            return f"the inputs name no {arrangement.runs_on}: {RECIPES_NEEDING[arrangement.runs_on]}"
        probes = () if variant is not None else _probes(spec, branch, node, planner)
        if Probe.sampling_reaches_open_request in probes or Probe.sampling_applies_to_next_request in probes:
            arrangement = replace(arrangement, action=replace(arrangement.action, args=dict(PROBE_SAMPLING)))
        before = planner.trace_at(node)
        setup = setup_steps(spec, node, arrangement.setup, before)
        start = setup[-1].end if setup else node
        if start != node:
            continue
        call = make_step(spec, start, arrangement.action, guards, setup[-1].after if setup else before)
        assert call.rule == branch.source, (call.rule, branch.source)
        concurrency = _cancel_during(spec, branch, call) if arrangement.cancel_at_first_token else None
        file_change = None
        if arrangement.change_file is not None:
            loaded = (setup[-1].after if setup else before).model
            assert loaded is not None, "a file is changed only under a runtime that has loaded it"
            file_change = ModelFileChange(loaded, arrangement.change_file)
            probes = (Probe.other_handle_carries_on, Probe.free_after_file_change)
        return _new_plan(branch, (*path, *setup), call, concurrency, variant.label if variant else "", probes,
                         file_change, arrangement.runs_on)
    return f"no path from {planner.start.state} reaches {branch.state} with the implementation's operations"


def _probes(spec: Spec, branch: Branch, node: Node, planner: Planner) -> tuple[Probe, ...]:
    """The probes of a branch's case: where its effects show only in outputs, and the implementation
    has the operations the probe makes."""
    outcome = branch.outcome
    if outcome.lazy_init or not {Operation.generate, Operation.generate_next_token} <= planner.operations:
        return ()
    effects = outcome.effects
    if effects[EffectField.sampling] == SamplingEffect.applied and outcome.error is None:
        if outcome.to == State.ContinuationReady:
            return (Probe.sampling_reaches_open_request,)
        if Operation.load_model in planner.operations or node.model_resident:
            return (Probe.sampling_applies_to_next_request,)
        return ()
    if outcome.to == State.ContinuationReady and effects[EffectField.request] != RequestEffect.cleared:
        return (Probe.continues_request,)
    return ()


def _cancel_during(spec: Spec, branch: Branch, call: Step) -> CancelWhileCallRuns:
    """The cancel sent at the first token of the case's generate: a call made in the state it runs via."""
    via = branch.outcome.via
    assert via is not None
    [cancel_op] = [op for op, guard in INTERRUPTS.items() if dict(branch.conditions).get(guard)]
    node = Node(State(via), call.start.model_resident)
    cancel_branch = spec.branch(via, cancel_op, {})
    return CancelWhileCallRuns(Step(Action(cancel_op, {}), node, expected_of(spec, cancel_branch, node.model_resident),
                                    cancel_branch.source))


def _plan_transient(spec: Spec, planner: Planner, branch: Branch) -> CasePlan | str:
    """Find an operation that runs via the branch's state from a reachable node; the call is made meanwhile."""
    state, op = branch.state, branch.operation
    interrupt = INTERRUPTS.get(Operation(op))
    for node in planner.reachable():
        for running_op in spec.commands:
            if running_op not in planner.operations:
                continue
            conditions = ((interrupt, True),) if interrupt in spec.guards_for(node.state, running_op) else ()
            guards = branch_guards(spec, node, running_op, conditions)
            if guards is None:
                continue
            outcome = spec.outcome(node.state, running_op, guards)
            if outcome.via != state or (outcome.lazy_init and planner.explicit_init):
                continue
            arrangement = realize(running_op, guards, planner.inputs)
            if arrangement.setup:
                continue
            action = arrangement.action
            if running_op == Operation.generate:
                action = running_generate(planner.inputs, cancelled=bool(conditions))
            running = make_step(spec, node, action, guards, planner.trace_at(node))
            path = planner.path_to(node)
            assert path is not None
            call, concurrency = _concurrent_call(spec, planner, branch, running)
            probes = (Probe.continues_request,) if (
                concurrency.call_waits is False and running.expected.to == State.ContinuationReady
                and Operation.generate_next_token in planner.operations) else ()
            return _new_plan(branch, path, call, concurrency, probes=probes)
    return f"no reachable operation runs via {state} with the implementation's operations"


def _concurrent_call(spec: Spec, planner: Planner, branch: Branch, running: Step) -> tuple[Step, CallWhileRunning]:
    """The call made while `running` runs: a serialized one applies in the state `running` leaves;
    the others (queries, cancel) answer in the transient state itself."""
    trigger = Trigger.first_token if running.action.op == Operation.generate else Trigger.state_observed
    if branch.outcome.serialized:
        left = running.end
        guards = branch_guards(spec, left, branch.operation, ())
        assert guards is not None
        call = make_step(spec, left, realize(branch.operation, guards, planner.inputs).action, guards, running.after)
        return call, CallWhileRunning(running, trigger, call_waits=True)
    transient = Node(State(branch.state), running.start.model_resident)
    call = Step(realize(branch.operation, {}, planner.inputs).action, transient,
                expected_of(spec, branch, transient.model_resident), branch.source)
    return call, CallWhileRunning(running, trigger, call_waits=False)
