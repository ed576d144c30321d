"""Random walks: a Hypothesis state machine generated from the table drives an implementation.

One rule per operation the implementation has. Each rule draws a recipe
choice (``plan.walk_model``), asks the table for the outcome in the state the
model of the runtime is in, applies the call and checks the reply, the
reported state, the resident data, last_error and the effects the structured
diagnostics show. On a mismatch Hypothesis shrinks the walk; the failure names
the table rule and prints the minimal sequence as JSON-lines protocol requests
that reproduce it from a fresh runtime (also when the failure did not come
back on Hypothesis's final replay: then the shortest failing sequence seen).

After the random walks, every (state, operation, guard values) the table
allows that they did not take is taken by a route of its own: the shortest
path to its state, then its call. The walk's coverage of those triples is
reported.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from ggufsm.conformance.adapter import Adapter, ImplementationDied, ImplementationHung, Reply
from ggufsm.conformance.plan.paths import Planner
from ggufsm.conformance.plan.recipes import Action, Arrangement, SuiteInputs
from ggufsm.conformance.plan.walk_model import (
    STEPS_PER_WALK,
    WalkModel,
    choices_for,
    reproduction,
    route_to,
    walk_triples,
    weighted,
)
from ggufsm.conformance.run.case import WALK, Case, Opener
from ggufsm.conformance.run.cells import file_identities
from ggufsm.conformance.run.checks import CallContext, CaseFailed, Observed, Unsupported, check_after, check_reply
from ggufsm.conformance.run.overlap import call_with_cancel_at_first_token
from ggufsm.spec import Spec
from ggufsm.spec.names import ErrorCode, Operation

CANCEL = Action(Operation.cancel, {})


class WalkFailure(AssertionError):
    def __init__(self, rule: str, message: str, steps: list[dict[str, Any]]):
        self.rule, self.message, self.steps = rule, message, list(steps)
        super().__init__(f"{rule}: {message}\n{reproduction(self.steps)}")


@dataclass
class WalkRecord:
    """What the walks of one case took, and the failures they met (shortest last kept first)."""

    taken: set[str] = field(default_factory=set)
    random_taken: set[str] = field(default_factory=set)   # by the random walks, before the routes
    failures: list[WalkFailure] = field(default_factory=list)

    def failed(self, failure: WalkFailure) -> WalkFailure:
        self.failures.append(failure)
        return failure

    def shortest_failure(self) -> WalkFailure | None:
        return min(self.failures, key=lambda failure: len(failure.steps), default=None)


class Walker:
    """One walk on one fresh runtime: applies (operation, choice) steps and checks each against the table."""

    def __init__(self, spec: Spec, inputs: SuiteInputs, adapter: Adapter, record: WalkRecord,
                 identities: dict[str, tuple[str, str]]):
        self.spec, self.inputs, self.adapter, self.record, self.identities = spec, inputs, adapter, record, identities
        self.model = WalkModel.fresh(spec)
        self.steps: list[dict[str, Any]] = []
        self.observed: Observed | None = None

    def apply(self, op: str, choice: str) -> None:
        choice = self.model.effective(choice)
        arrangement = self.model.arrange(op, choice, self.inputs)
        state = self.model.node.state
        step: dict[str, Any] = {"op": op, "args": dict(arrangement.action.args)}
        if arrangement.cancel_at_first_token:
            step["cancel_at_first_token"] = True
        self.steps.append(step)
        try:
            reply, landed, streamed = self.call(arrangement)
        except (ImplementationDied, ImplementationHung) as died:
            raise self.record.failed(WalkFailure("the implementation's process", str(died), self.steps)) from None
        except Exception as error:  # noqa: BLE001  an answer the kit cannot read fails the walk, with its sequence
            raise self.record.failed(WalkFailure("the protocol", f"{state}.{op} ({choice}): the call could not be "
                                                                f"made: {type(error).__name__}: {error}",
                                                 self.steps)) from None
        branch, expected = self.model.expect(self.spec, op, choice, arrangement, landed)
        try:
            context = CallContext(dict(arrangement.action.args), reply, self.observed, self.identities,
                                  [int(token["token_id"]) for token in streamed] if streamed else None)
            check_reply(reply, expected, branch.source, f"{state}.{op} ({choice})", arrangement.action.args)
            self.observed = check_after(self.adapter, expected, branch.source, f"after {state}.{op} ({choice})",
                                        context)
        except CaseFailed as failed:
            raise self.record.failed(WalkFailure(failed.rule, failed.message, self.steps)) from None
        except Unsupported as unsupported:
            raise self.record.failed(WalkFailure("hello.capabilities", f"{op} is listed as supported but answers: "
                                                                       f"{unsupported}", self.steps)) from None
        except Exception as error:  # noqa: BLE001  a reply the kit cannot read fails the walk, with its sequence
            raise self.record.failed(WalkFailure(branch.source, f"{state}.{op} ({choice}): the reply could not be "
                                                               f"judged: {type(error).__name__}: {error}",
                                                 self.steps)) from None
        self.record.taken.add(branch.source)
        self.model.advance(self.spec, op, choice, branch, expected)

    def call(self, arrangement: Arrangement) -> tuple[Reply, bool, list[dict[str, Any]]]:
        """The reply, whether a cancel landed while the call ran, and the token events of a cancelled one."""
        action = arrangement.action
        if not arrangement.cancel_at_first_token:
            return self.adapter.call(action.op, dict(action.args)), False, []
        reply, cancel_reply, streamed, _ = call_with_cancel_at_first_token(self.adapter, action, CANCEL)
        landed = reply.code == ErrorCode.Cancelled or bool(
            cancel_reply is not None and cancel_reply.ok and (cancel_reply.value or {}).get("was_running"))
        return reply, landed, streamed


def make_machine(spec: Spec, inputs: SuiteInputs, open_adapter: Callable[[], Adapter], operations: Iterable[str],
                 record: WalkRecord) -> type:
    """A RuleBasedStateMachine class for this implementation (its operations only)."""
    from hypothesis import strategies as st
    from hypothesis.stateful import RuleBasedStateMachine, rule

    identities = file_identities(inputs)

    class TableWalk(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            self.walker = Walker(spec, inputs, open_adapter(), record, identities)

        def teardown(self) -> None:
            self.walker.adapter.close()

    available = set(operations)
    for op in spec.operations:
        if op not in available:
            continue
        choices = weighted(choices_for(spec, op, available))
        setattr(TableWalk, f"op_{op}", rule(choice=st.sampled_from(choices))(
            lambda self, choice, _op=op: self.walker.apply(_op, choice)))
    return TableWalk


def run_walks(spec: Spec, inputs: SuiteInputs, open_adapter: Callable[[], Adapter], operations: Iterable[str], *,
              examples: int, steps: int = STEPS_PER_WALK, record: WalkRecord | None = None) -> WalkRecord:
    """Run `examples` random walks (derandomized: the same walks every run), then a route to every
    triple they missed; raises WalkFailure (the shortest failing sequence)."""
    from hypothesis import HealthCheck, settings
    from hypothesis.stateful import run_state_machine_as_test

    record = record if record is not None else WalkRecord()
    operations = list(operations)
    machine = make_machine(spec, inputs, open_adapter, operations, record)
    try:
        run_state_machine_as_test(machine, settings=settings(
            max_examples=examples, stateful_step_count=steps, deadline=None, derandomize=True, database=None,
            suppress_health_check=list(HealthCheck), print_blob=False, report_multiple_bugs=False))
    except Exception as error:  # noqa: BLE001  WalkFailure, or Hypothesis's Flaky when the last replay passed
        shortest = record.shortest_failure()
        if shortest is None:
            raise
        if not isinstance(error, WalkFailure):
            shortest = WalkFailure(shortest.rule, f"{shortest.message}\n(the walk failed, then passed when Hypothesis "
                                                  f"replayed it: {type(error).__name__}; the shortest failing "
                                                  "sequence seen follows)", shortest.steps)
        raise shortest from None
    record.random_taken = set(record.taken)
    _complete(spec, inputs, open_adapter, operations, record)
    return record


def _complete(spec: Spec, inputs: SuiteInputs, open_adapter: Callable[[], Adapter], operations: list[str],
              record: WalkRecord) -> None:
    """Take every triple the random walks missed, each by its own route from a fresh runtime."""
    planner = Planner(spec, inputs, operations)
    sources = {branch.source: branch for branch in spec.all_branches()}
    identities = file_identities(inputs)
    for source in walk_triples(spec, operations):
        if source in record.taken:
            continue
        route = route_to(spec, planner, sources[source])
        if route is None:
            continue
        walker = Walker(spec, inputs, open_adapter(), record, identities)
        try:
            for op, choice in route:
                walker.apply(op, choice)
        finally:
            walker.adapter.close()


def walk_case(spec: Spec, inputs: SuiteInputs, *, examples: int) -> Case:
    measures: dict[str, Any] = {}

    def run(opener: Adapter) -> list[str]:
        assert isinstance(opener, Opener), "a walk opens its own runtimes"
        operations = opener.info.capabilities.operations
        record = WalkRecord()
        triples = walk_triples(spec, operations)
        try:
            run_walks(spec, inputs, opener.open, operations, examples=examples, record=record)
        except WalkFailure as failure:
            raise CaseFailed(failure.rule, f"{failure.message}\n{reproduction(failure.steps)}") from None
        finally:
            measures.update(total=len(triples), taken=sum(source in record.taken for source in triples),
                            by_random_walks=sum(source in record.random_taken for source in triples))
        return [f"{examples} random walks of up to {STEPS_PER_WALK} operations took {measures['by_random_walks']} of "
                f"the {len(triples)} (state, operation, guard values) triples; routes took the rest",
                f"walk triple coverage: {measures['taken']}/{len(triples)}"]

    return Case("walk.table_oracle", WALK, WALK, [f"{examples} random walks (Hypothesis, derandomized), the table "
                                                  "as oracle, then every (state, operation, guard values) they missed"],
                run, fresh_adapter=False, measures=measures)
