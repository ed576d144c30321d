"""Shortest paths over the table's own transitions, from a fresh runtime to every reachable node.

A node is a stable state and whether a model is installed (RecoverableError
with and without a model are different places). A step is one call and the
outcome the table gives it. The search prefers fewer steps, then fewer
failing ones, and uses only the operations the implementation has.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, replace

from ggufsm.conformance.plan.expected import Expected, Trace, expected_of
from ggufsm.conformance.plan.recipes import Action, SuiteInputs, realize, with_natural_values
from ggufsm.spec import Spec
from ggufsm.spec.names import ErrorCode, Guard, Operation, State


@dataclass(frozen=True, order=True)
class Node:
    state: State
    model_resident: bool

    def __str__(self) -> str:
        return f"{self.state} ({'model resident' if self.model_resident else 'no model'})"


@dataclass(frozen=True)
class Step:
    """One call of a case and the outcome the table gives it."""

    action: Action
    start: Node
    expected: Expected
    rule: str      # the table branch that decides it, e.g. "cells.Ready.generate.cases[2]"

    @property
    def end(self) -> Node:
        return Node(self.expected.to, self.expected.model_resident)

    @property
    def after(self) -> Trace:
        assert self.expected.after is not None, "a step of a path ends in a stable state"
        return self.expected.after

    @property
    def transition(self) -> tuple[State, Operation, State, ErrorCode | None]:
        return (self.start.state, self.action.op, self.expected.to, self.expected.error)

    def describe(self) -> str:
        return f"{self.start.state} ─{self.action.op}→ {self.expected.describe()}"


def branch_guards(spec: Spec, node: Node, op: str, conditions: Iterable[tuple[str, bool]]) -> dict[str, bool] | None:
    """The full guard assignment for a branch taken from `node`, or None if the node contradicts it."""
    chosen = dict(conditions)
    if chosen.get(Guard.model_resident, node.model_resident) != node.model_resident:
        return None
    chosen[Guard.model_resident] = node.model_resident
    return with_natural_values(spec.guards_for(node.state, op), chosen)


def make_step(spec: Spec, node: Node, action: Action, guards: Mapping[str, bool], before: Trace) -> Step:
    """`action` made from `node`, where `guards` hold, after calls that left `before`."""
    assert before.model_resident == node.model_resident, (node, before)
    branch = spec.branch(node.state, action.op, guards)
    n_ctx = action.args.get("n_ctx") if action.op == Operation.init_runtime else None
    expected = expected_of(spec, branch, before, action.ends, action.installs, n_ctx)
    # A generate the table stops before it runs does not end at all.
    return Step(replace(action, ends=expected.finish_reason), node, expected, branch.source)


def path_trace(path: tuple[Step, ...]) -> Trace:
    """What a path leaves (a fresh runtime: nothing)."""
    return path[-1].after if path else Trace()


def setup_steps(spec: Spec, node: Node, actions: Iterable[Action], before: Trace) -> tuple[Step, ...]:
    """The steps of a recipe's set-up calls (natural guard values), one after another from `node`."""
    steps: list[Step] = []
    for action in actions:
        here = steps[-1].end if steps else node
        guards = branch_guards(spec, here, action.op, ())
        assert guards is not None
        steps.append(make_step(spec, here, action, guards, steps[-1].after if steps else before))
    return tuple(steps)


class Planner:
    """Shortest paths over the table's transitions, restricted to the operations an implementation has."""

    def __init__(self, spec: Spec, inputs: SuiteInputs, operations: Iterable[str] | None = None):
        self.spec = spec
        self.inputs = inputs
        self.operations = set(spec.operations if operations is None else operations)
        self.start = Node(State(spec.initial_state), False)
        self._paths = self._search()

    @property
    def explicit_init(self) -> bool:
        """Paths configure the runtime explicitly when they can: a lazily initialised runtime has the
        implementation's default context size, which the recipes (a prompt longer than n_ctx) do not know."""
        return Operation.init_runtime in self.operations

    def _moves(self, node: Node, before: Trace) -> Iterator[Step]:
        """Every plain step the table allows from a stable node (no concurrency, no set-up)."""
        for op in self.spec.commands:
            if op not in self.operations:
                continue
            for branch in self.spec.branches(node.state, op):
                guards = branch_guards(self.spec, node, op, branch.conditions)
                if guards is None or branch.outcome.serialized or (branch.outcome.lazy_init and self.explicit_init):
                    continue
                arrangement = realize(op, guards, self.inputs)
                if arrangement.plain:
                    yield make_step(self.spec, node, arrangement.action, guards, before)

    def _search(self) -> dict[Node, tuple[Step, ...]]:
        """Dijkstra on (steps, failed steps): shortest first, then the one with fewest errors."""
        best: dict[Node, tuple[Step, ...]] = {self.start: ()}
        order = itertools.count()
        frontier = [((0, 0), next(order), self.start)]
        settled: set[Node] = set()
        while frontier:
            cost, _, node = heapq.heappop(frontier)
            if node in settled:
                continue
            settled.add(node)
            for step in self._moves(node, path_trace(best[node])):
                after = step.end
                new_cost = (cost[0] + 1, cost[1] + (step.expected.error is not None))
                known = best.get(after)
                if after not in settled and (known is None or new_cost < path_cost(known)):
                    best[after] = (*best[node], step)
                    heapq.heappush(frontier, (new_cost, next(order), after))
        return best

    def path_to(self, node: Node) -> tuple[Step, ...] | None:
        return self._paths.get(node)

    def trace_at(self, node: Node) -> Trace:
        """What the path to `node` leaves."""
        return path_trace(self._paths[node])

    def reachable(self) -> list[Node]:
        """Reachable nodes, nearest first."""
        return sorted(self._paths, key=lambda node: (path_cost(self._paths[node]), node))


def path_cost(path: tuple[Step, ...]) -> tuple[int, int]:
    return (len(path), sum(step.expected.error is not None for step in path))
