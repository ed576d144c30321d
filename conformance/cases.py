"""The table-derived suite: one case for every branch of every (state, operation) cell.

Nothing here lists a state, an operation or an outcome: the planner walks the
table. For each branch it

1. picks the guard values the branch needs (natural values for the rest) and
   turns them into a concrete call with the recipes (``conformance.recipes``);
2. reaches the branch's state by a shortest path from a fresh runtime: a
   search over the table's own transitions, whose nodes are (state, whether a
   model is resident), preferring successful steps over failing ones;
3. applies the call and checks the outcome (the named error, the state after)
   and the resident data of the state after.

Transient states (Loading, Generating) cannot be stood in: their cells are
checked by concurrency: start the operation that enters the state, make the
call while it runs, and check that it waited and then applied in the state
the running operation left (or, for queries and cancel, that it answered).

The cases that prove what a cancel does to a running generate are planned with
the cancel inputs (``SuiteInputs.cancel_inputs``): a longer context and a
generate that asks for all of it, so it still runs when a cancel sent at its
first token arrives, even over a pipe.
"""

from __future__ import annotations

import heapq
import itertools
import threading
import time
from dataclasses import dataclass, field, replace
from typing import Callable

from ggufsm.conformance.adapter import Adapter, Reply
from ggufsm.conformance.checks import (
    CaseFailed, Expected, RaceLost, Unsupported, check_after, check_reply, require_supported,
)
from ggufsm.conformance.recipes import Action, SuiteInputs, fill_context, long_generate, realize, with_natural_values

MODEL_RESIDENT = "model_resident"
# How long a concurrent call is given to show that it does not wait (queries, cancel) or that it
# does (commands behind a running operation) before the case moves on.
OVERLAP_WINDOW_S = 0.05
ANSWER_TIMEOUT_S = 30.0      # for a cancel, which must answer at once
DEFAULT_OPERATION_S = 60.0   # one operation's limit where the adapter sets none


def waiting_limit(adapter: Adapter) -> float:
    """How long a call may take that waits behind a running operation: that operation and its own."""
    return 2 * (adapter.operation_timeout or DEFAULT_OPERATION_S)


# ─── the plan: pure data derived from the table ─────────────────────────────


@dataclass(frozen=True, order=True)
class Node:
    state: str
    model_resident: bool

    def __str__(self) -> str:
        return f"{self.state} ({'model resident' if self.model_resident else 'no model'})"


@dataclass(frozen=True)
class Step:
    """One call of a case and the outcome the table gives it."""

    action: Action
    start: Node
    expected: Expected
    end: Node
    rule: str      # the table branch that decides it, e.g. "cells.Ready.generate.cases[2]"

    @property
    def transition(self) -> tuple[str, str, str, str | None]:
        return (self.start.state, self.action.op, self.expected.to, self.expected.error)

    def describe(self) -> str:
        return f"{self.start.state} ─{self.action.op}→ {self.expected.describe()}"

    def to_json(self) -> dict:
        return {**self.action.to_json(), "from": self.start.state,
                "expect": {"error": self.expected.error, "state": self.expected.to}, "rule": self.rule}


@dataclass(frozen=True)
class CasePlan:
    id: str
    state: str
    op: str
    conditions: tuple[tuple[str, bool], ...]
    rule: str
    effect: str
    path: tuple[Step, ...]
    act: Step
    running: Step | None = None    # transient cells: the operation running while `act` is made

    @property
    def cell(self) -> str:
        return f"{self.state}.{self.op}"

    @property
    def transitions(self) -> tuple[tuple, ...]:
        """The table transitions this case exercises (its own branch; for transient cells also the
        transitions into and out of the transient state)."""
        if self.running is None:
            return (self.act.transition,)
        return ((self.state, self.op, self.state, None), self.running.transition, self.act.transition)

    def to_json(self) -> dict:
        """The case as data (the suite can be exported and run by other harnesses)."""
        return {"id": self.id, "rule": self.rule, "effect": self.effect, "path": [step.to_json() for step in self.path],
                "while_running": self.running.to_json() if self.running else None, "call": self.act.to_json()}

    def describe(self) -> list[str]:
        lines = [f"{step.start.state}: {step.action.op}({_args_text(step.action)}) → {step.expected.describe()}"
                 for step in self.path]
        if self.running is not None:
            lines.append(f"run {self.running.action.op}({_args_text(self.running.action)}) and, while it runs:")
        lines.append(f"{self.state}: {self.op}({_args_text(self.act.action)}) → expect {self.act.expected.describe()}")
        return lines


def _args_text(action: Action) -> str:
    text = ", ".join(f"{key}={_short(value)}" for key, value in action.args.items())
    flags = [flag for flag, on in (("after filling the context", action.fill_context_first),
                                   ("cancelled from another thread", action.cancel_while_running)) if on]
    return text + (f" [{'; '.join(flags)}]" if flags else "")


def _short(value, limit: int = 48) -> str:
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit - 12]}…<{len(text)} chars>"


def resident_after(spec, start: Node, expected: Expected) -> bool:
    """Whether a model is resident after a transition: what the target state requires or forbids,
    else what the start had (a failed operation keeps what was there)."""
    required, optional = spec.resident(expected.to)
    if "model" in required:
        return True
    if "model" not in optional:
        return False
    return start.model_resident


def branch_guards(spec, node: Node, op: str, conditions) -> dict[str, bool] | None:
    """The full guard assignment for a branch taken from `node`, or None if the node contradicts it."""
    chosen = dict(conditions)
    if chosen.get(MODEL_RESIDENT, node.model_resident) != node.model_resident:
        return None
    chosen[MODEL_RESIDENT] = node.model_resident
    return with_natural_values(spec.guards_for(node.state, op), chosen)


def make_step(spec, node: Node, op: str, guards: dict[str, bool], inputs: SuiteInputs) -> Step:
    branch = spec.branch(node.state, op, guards)
    expected = Expected(branch.outcome.to, branch.outcome.error)
    return Step(realize(op, guards, inputs), node, expected, Node(expected.to, resident_after(spec, node, expected)),
                branch.source)


class Planner:
    """Shortest paths over the table's transitions, restricted to the operations an implementation has."""

    def __init__(self, spec, inputs: SuiteInputs, operations=None):
        self.spec = spec
        self.inputs = inputs
        self.operations = set(spec.operations if operations is None else operations)
        self.start = Node(spec.initial_state, False)
        self._paths = self._search()

    def _moves(self, node: Node):
        """Every plain step the table allows from a stable node (no concurrency, no set-up).

        Paths configure the runtime explicitly when they can: a lazily initialised runtime has the
        implementation's default context size, which the recipes (a prompt longer than n_ctx) do not know."""
        explicit_init = "init_runtime" in self.operations
        for op in self.spec.commands:
            if op not in self.operations:
                continue
            for branch in self.spec.branches(node.state, op):
                guards = branch_guards(self.spec, node, op, branch.conditions)
                if guards is None or branch.outcome.serialized or (branch.outcome.lazy_init and explicit_init):
                    continue
                step = make_step(self.spec, node, op, guards, self.inputs)
                if step.action.plain:
                    yield step

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
            for step in self._moves(node):
                after = step.end
                new_cost = (cost[0] + 1, cost[1] + (step.expected.error is not None))
                known = best.get(after)
                if after not in settled and (known is None or new_cost < _cost(known)):
                    best[after] = (*best[node], step)
                    heapq.heappush(frontier, (new_cost, next(order), after))
        return best

    def path_to(self, node: Node) -> tuple[Step, ...] | None:
        return self._paths.get(node)

    def reachable(self) -> list[Node]:
        """Reachable nodes, nearest first."""
        return sorted(self._paths, key=lambda node: (_cost(self._paths[node]), node))


def _cost(path: tuple[Step, ...]) -> tuple[int, int]:
    return (len(path), sum(step.expected.error is not None for step in path))


def plan_suite(spec, inputs: SuiteInputs, operations=None) -> tuple[list[CasePlan], list[dict]]:
    """Every branch's case, and the branches no case can reach with these operations (with why)."""
    planner = Planner(spec, inputs, operations)
    cancel_planner = Planner(spec, inputs.cancel_inputs(), operations)
    generating = {branch.outcome.via for branch in spec.all_branches() if branch.operation == "generate"} - {None}
    plans, unreachable = [], []
    for state, entry in spec.states.items():
        for op in spec.operations:
            for branch in spec.branches(state, op):
                # Cases that prove what a cancel does to a running generate: the generate must still be
                # running when the cancel arrives, even over a pipe, so they are planned with the cancel inputs.
                cancel_must_land = dict(branch.conditions).get("cancelled", False) or (state in generating and op == "cancel")
                planner_for = cancel_planner if cancel_must_land else planner
                plan = (_plan_transient(spec, planner_for, state, op, branch) if entry.transient
                        else _plan_stable(spec, planner_for, state, op, branch))
                if isinstance(plan, CasePlan):
                    plans.append(plan)
                else:
                    unreachable.append({"id": _case_id(state, op, branch), "cell": f"{state}.{op}",
                                        "rule": branch.source, "why": plan})
    return plans, unreachable


def _case_id(state: str, op: str, branch) -> str:
    conditions = ",".join(f"{name}={'true' if value else 'false'}" for name, value in branch.conditions)
    return f"{state}.{op}" + (f"[{conditions}]" if conditions else "")


def _plan_stable(spec, planner: Planner, state: str, op: str, branch) -> CasePlan | str:
    resident_values = [value for value in (False, True) if dict(branch.conditions).get(MODEL_RESIDENT, value) == value]
    for resident in resident_values:
        node = Node(state, resident)
        path = planner.path_to(node)
        if path is None:
            continue
        guards = branch_guards(spec, node, op, branch.conditions)
        act = make_step(spec, node, op, guards, planner.inputs)
        assert act.rule == branch.source, (act.rule, branch.source)
        return CasePlan(_case_id(state, op, branch), state, op, branch.conditions, branch.source,
                        branch.outcome.effect, path, act)
    return f"no path from {planner.start.state} reaches {state} with the implementation's operations"


def _plan_transient(spec, planner: Planner, state: str, op: str, branch) -> CasePlan | str:
    """Find an operation that runs via `state` from a reachable node, succeeding; `op` is made meanwhile."""
    for node in planner.reachable():
        for running_op in spec.commands:
            if running_op not in planner.operations:
                continue
            guards = branch_guards(spec, node, running_op, ())
            outcome = spec.outcome(node.state, running_op, guards) if guards is not None else None
            if outcome is None or outcome.via != state or (outcome.lazy_init and "init_runtime" in planner.operations):
                continue
            running = make_step(spec, node, running_op, guards, planner.inputs)
            if running.expected.error is not None or not running.action.plain:
                continue
            if running_op == "generate":
                running = Step(long_generate(planner.inputs), running.start, running.expected, running.end, running.rule)
            act = _concurrent_step(spec, planner, state, op, branch, running)
            return CasePlan(_case_id(state, op, branch), state, op, branch.conditions, branch.source,
                            branch.outcome.effect, planner.path_to(node), act, running)
    return f"no reachable operation runs via {state} with the implementation's operations"


def _concurrent_step(spec, planner: Planner, state: str, op: str, branch, running: Step) -> Step:
    """The call made while `running` runs: serialized ones apply in the state it leaves; the others
    (queries, cancel) answer in the transient state itself."""
    transient = Node(state, running.start.model_resident)
    if branch.outcome.serialized:
        left = running.end
        guards = branch_guards(spec, left, op, ())
        step = make_step(spec, left, op, guards, planner.inputs)
        return Step(step.action, transient, step.expected, step.end, branch.source)
    return Step(realize(op, {}, planner.inputs), transient, Expected(branch.outcome.to, branch.outcome.error),
                transient, branch.source)


# ─── running a plan ──────────────────────────────────────────────────────────


@dataclass
class Observed:
    """What a case observed beyond pass/fail (for the report)."""

    notes: list[str] = field(default_factory=list)


def run_plan(plan: CasePlan, adapter: Adapter, spec, inputs: SuiteInputs) -> Observed:
    """Run one case on a fresh adapter; raises CaseFailed, Unsupported or RaceLost."""
    observed = Observed()
    for op in {step.action.op for step in (*plan.path, plan.act)} | ({plan.running.action.op} if plan.running else set()):
        require_supported(adapter, op)
    for number, step in enumerate(plan.path, 1):
        reply = adapter.call(step.action.op, dict(step.action.args))
        check_reply(reply, step.expected, step.rule, f"reaching {plan.state}, step {number} {step.describe()}")
    if plan.running is not None:
        _run_concurrent(plan, adapter, spec, observed)
    else:
        _run_direct(plan, adapter, spec, inputs)
    return observed


def _run_direct(plan: CasePlan, adapter: Adapter, spec, inputs: SuiteInputs) -> None:
    act = plan.act
    what = f"{plan.state}.{plan.op}"
    if act.action.fill_context_first:
        fill = fill_context(inputs)
        reply = adapter.call(fill.op, dict(fill.args))
        check_reply(reply, Expected(act.start.state, None), plan.rule, f"filling the context before {what}")
    if act.action.cancel_while_running:
        reply, cancel_reply = _generate_cancelled(adapter, act.action)
        _check_cancelled(reply, cancel_reply, act.action, plan.rule, what)
    else:
        reply = adapter.call(act.action.op, dict(act.action.args))
    check_reply(reply, act.expected, plan.rule, what)
    if plan.op == "state" and reply.ok and adapter.capabilities.state and reply.value != plan.state:
        raise CaseFailed(plan.rule, f"the state query answers {reply.value!r} in state {plan.state}")
    check_after(adapter, spec, act.expected, plan.rule, f"after {what}")


def _generate_cancelled(adapter: Adapter, action: Action) -> tuple[Reply, Reply | None]:
    """A generate that is cancelled from another thread as soon as its first token arrives."""
    cancel_replies: list = []

    def cancel() -> None:
        try:
            cancel_replies.append(adapter.call("cancel"))
        except Exception as error:
            cancel_replies.append(error)

    def on_token(token: dict) -> None:
        if cancel_replies:
            return
        canceller = threading.Thread(target=cancel, daemon=True)
        canceller.start()
        canceller.join(ANSWER_TIMEOUT_S)
        if canceller.is_alive():
            cancel_replies.append(None)

    reply = adapter.call(action.op, dict(action.args), on_token=on_token)
    cancel_reply = cancel_replies[0] if cancel_replies else None
    if isinstance(cancel_reply, Exception):
        raise cancel_reply
    return reply, cancel_reply


def _check_cancelled(reply: Reply, cancel_reply: Reply | None, action: Action, rule: str, what: str) -> None:
    if reply.not_supported:
        raise Unsupported(action.op)
    if cancel_reply is None and reply.ok and len((reply.value or {}).get("token_ids", [])) > 0:
        raise CaseFailed(rule, f"{what}: cancel() did not answer while the generate ran (it must not wait)")
    if cancel_reply is not None and cancel_reply.not_supported:
        raise Unsupported("cancel")
    if reply.ok and cancel_reply is not None and cancel_reply.ok and (cancel_reply.value or {}).get("was_running") is False:
        raise RaceLost("the generate ended before the cancel arrived")
    if reply.code == "Cancelled":
        kept = (reply.value or {}).get("token_ids")
        if kept is not None and not 1 <= len(kept) < action.args["max_tokens"]:
            raise CaseFailed(rule, f"{what}: a cancelled generate keeps the tokens made before the cancel; "
                                   f"it reports {len(kept)} of max_tokens={action.args['max_tokens']}")


def _run_concurrent(plan: CasePlan, adapter: Adapter, spec, observed: Observed) -> None:
    """Start the running operation; make the case's call while it runs; check both."""
    running, act = plan.running, plan.act
    what = f"{plan.state}.{plan.op} (made while {running.action.op} runs)"
    concurrent: dict[str, object] = {}

    def make_call() -> None:
        try:
            concurrent["reply"] = adapter.call(act.action.op, dict(act.action.args), timeout=waiting_limit(adapter))
        except Exception as error:   # e.g. the implementation died: raised again on the case's thread
            concurrent["error"] = error

    caller = threading.Thread(target=make_call, daemon=True)

    def start_call() -> None:
        if caller.is_alive() or "started_at" in concurrent:
            return
        concurrent["started_at"] = time.monotonic()
        caller.start()
        caller.join(OVERLAP_WINDOW_S)   # queries and cancel answer here; commands should still be waiting
        concurrent["answered_during"] = not caller.is_alive()

    if running.action.op == "generate":
        running_reply = adapter.call(running.action.op, dict(running.action.args), on_token=lambda token: start_call())
    else:
        running_reply = _run_while_transient(adapter, running, plan.state, start_call, observed)
    if "started_at" not in concurrent:
        start_call()   # the running operation produced no sign of running: make the call after it
        observed.notes.append(f"{plan.state} not observed; the call was made after {running.action.op}")
    caller.join(waiting_limit(adapter))
    if caller.is_alive():
        raise CaseFailed(plan.rule, f"{what}: no answer within {waiting_limit(adapter):.0f} s (deadlock?)")
    if "error" in concurrent:
        raise concurrent["error"]
    _check_concurrent(plan, adapter, spec, running_reply, concurrent, what)


def _run_while_transient(adapter: Adapter, running: Step, state: str, start_call: Callable, observed: Observed) -> Reply:
    """Run an operation that enters `state` (a load) on a thread; make the call once the state is
    observed (never before, or the call could overtake it)."""
    result: dict[str, object] = {}

    def run() -> None:
        try:
            result["reply"] = adapter.call(running.action.op, dict(running.action.args))
        except Exception as error:
            result["error"] = error

    runner = threading.Thread(target=run, daemon=True)
    runner.start()
    if adapter.capabilities.state:
        while runner.is_alive():
            if adapter.current_state() == state:
                start_call()
                observed.notes.append(f"{state} observed")
                break
    runner.join(waiting_limit(adapter))
    if runner.is_alive():
        raise CaseFailed(running.rule, f"{running.action.op} did not finish within {waiting_limit(adapter):.0f} s")
    if "error" in result:
        raise result["error"]
    return result["reply"]


def _check_concurrent(plan: CasePlan, adapter: Adapter, spec, running_reply: Reply, concurrent: dict, what: str) -> None:
    running, act = plan.running, plan.act
    reply: Reply = concurrent["reply"]
    is_cancel = plan.op == "cancel" and running.action.op == "generate"
    if reply.not_supported:
        raise Unsupported(plan.op)
    if is_cancel:
        if running_reply.ok and (reply.value or {}).get("was_running") is False:
            raise RaceLost("the generate ended before the cancel arrived")
        check_reply(running_reply, Expected(running.expected.to, "Cancelled"), plan.rule,
                    f"{running.action.op} cancelled while it ran")
    else:
        if running_reply.state == act.expected.to:
            # The state in a reply is read once the operation has returned; by then the command that
            # waited for it may already have applied. Its own reply and the state query judge that.
            running_reply = replace(running_reply, state=None)
        check_reply(running_reply, running.expected, running.rule, f"{running.action.op} (while {plan.op} waited)")
        if running.action.op == "generate":
            produced = len((running_reply.value or {}).get("token_ids", []))
            if produced != running.action.args["max_tokens"]:
                raise CaseFailed(plan.rule, f"{what}: the running generate was disturbed: {produced} of "
                                            f"{running.action.args['max_tokens']} tokens")
    serialized = spec.outcome(plan.state, plan.op, with_natural_values(spec.guards_for(plan.state, plan.op), {})).serialized
    # Only a generate holds its thread inside on_token, so only there is "answered meanwhile" exact.
    if serialized and concurrent.get("answered_during") and running.action.op == "generate" and _in_process(adapter):
        raise CaseFailed(plan.rule, f"{what}: answered while {running.action.op} was still running; it must wait")
    if not serialized:
        _check_answer_in_transient(plan, reply, running, what)
        return
    check_reply(reply, act.expected, plan.rule, what)
    check_after(adapter, spec, act.expected, plan.rule, f"after {what}")


def _check_answer_in_transient(plan: CasePlan, reply: Reply, running: Step, what: str) -> None:
    """Queries and cancel answer at once, in the transient state or (if it already ended) the one after."""
    if not reply.ok:
        raise CaseFailed(plan.rule, f"{what}: expected an answer, got {reply.describe()}")
    if plan.op == "state" and reply.value not in (plan.state, running.expected.to):
        raise CaseFailed(plan.rule, f"{what}: the state query answers {reply.value!r}, expected "
                                    f"{plan.state} (or {running.expected.to} once it ended)")


def _in_process(adapter: Adapter) -> bool:
    """Only in-process timing is exact enough to judge whether a call answered while another ran."""
    from ggufsm.conformance.adapter import PythonAdapter

    inner = getattr(adapter, "inner", adapter)
    return isinstance(inner, PythonAdapter)


def table_cases(spec, inputs: SuiteInputs, operations) -> tuple[list, list[dict]]:
    """The table's cases as runnable Cases, and the branches this implementation cannot reach."""
    from ggufsm.conformance.runner import Case

    plans, unreachable = plan_suite(spec, inputs, operations)

    def runner_for(plan: CasePlan):
        return lambda adapter: run_plan(plan, adapter, spec, inputs).notes

    cases = [Case(plan.id, "cell", plan.rule, [*plan.describe(), f"effect: {plan.effect}"], runner_for(plan),
                  cell=plan.cell, conditions=dict(plan.conditions), transitions=plan.transitions)
             for plan in plans]
    return cases, unreachable
