"""Random walks: a Hypothesis state machine generated from the table drives an implementation.

One rule per operation the implementation has. Each rule draws a recipe
choice (``plan.walk_model``), asks the table for the outcome in the state the
model of the runtime is in, applies the call and checks the reply, the
reported state, the resident data and last_error. On a mismatch Hypothesis
shrinks the walk; the failure names the table rule and prints the minimal
sequence as JSON-lines protocol requests that reproduce it from a fresh
runtime.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from ggufsm.conformance.adapter import Adapter, ImplementationDied, ImplementationHung, Reply
from ggufsm.conformance.plan.recipes import Action, Arrangement, SuiteInputs
from ggufsm.conformance.plan.walk_model import STEPS_PER_WALK, WalkModel, choices_for, reproduction, weighted
from ggufsm.conformance.run.case import WALK, Case, Opener
from ggufsm.conformance.run.checks import CaseFailed, Unsupported, check_after, check_reply
from ggufsm.conformance.run.overlap import call_with_cancel_at_first_token
from ggufsm.spec import Spec
from ggufsm.spec.names import ErrorCode, Operation

CANCEL = Action(Operation.cancel, {})


class WalkFailure(AssertionError):
    def __init__(self, rule: str, message: str, steps: list[dict[str, Any]]):
        self.rule, self.message, self.steps = rule, message, steps
        super().__init__(f"{rule}: {message}\n{reproduction(steps)}")


def make_machine(spec: Spec, inputs: SuiteInputs, open_adapter: Callable[[], Adapter],
                 operations: Iterable[str]) -> type:
    """A RuleBasedStateMachine class for this implementation (its operations only)."""
    from hypothesis import strategies as st
    from hypothesis.stateful import RuleBasedStateMachine, rule

    class TableWalk(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            self.adapter = open_adapter()
            self.model = WalkModel.fresh(spec)
            self.steps: list[dict[str, Any]] = []

        def teardown(self) -> None:
            self.adapter.close()

        def apply(self, op: str, choice: str) -> None:
            choice = self.model.effective(choice)
            arrangement = self.model.arrange(op, choice, inputs)
            state = self.model.node.state
            step: dict[str, Any] = {"op": op, "args": dict(arrangement.action.args)}
            if arrangement.cancel_at_first_token:
                step["cancel_at_first_token"] = True
            self.steps.append(step)
            try:
                reply, landed = self.call(arrangement)
            except (ImplementationDied, ImplementationHung) as died:
                raise WalkFailure("the implementation's process", str(died), self.steps) from None
            branch, expected = self.model.expect(spec, op, choice, arrangement, landed)
            try:
                check_reply(reply, expected, branch.source, f"{state}.{op} ({choice})")
                check_after(self.adapter, expected, branch.source, f"after {state}.{op} ({choice})")
            except CaseFailed as failed:
                raise WalkFailure(failed.rule, failed.message, self.steps) from None
            except Unsupported as unsupported:
                raise WalkFailure("hello.capabilities", f"{op} is listed as supported but answers: {unsupported}",
                                  self.steps) from None
            self.model.advance(spec, op, choice, branch, expected)

        def call(self, arrangement: Arrangement) -> tuple[Reply, bool]:
            """The reply, and whether a cancel landed while the call ran."""
            action = arrangement.action
            if not arrangement.cancel_at_first_token:
                return self.adapter.call(action.op, dict(action.args)), False
            reply, cancel_reply = call_with_cancel_at_first_token(self.adapter, action, CANCEL)
            landed = reply.code == ErrorCode.Cancelled or bool(
                cancel_reply is not None and cancel_reply.ok and (cancel_reply.value or {}).get("was_running"))
            return reply, landed

    available = set(operations)
    for op in spec.operations:
        if op not in available:
            continue
        choices = weighted(choices_for(spec, op, available))
        setattr(TableWalk, f"op_{op}", rule(choice=st.sampled_from(choices))(
            lambda self, choice, _op=op: self.apply(_op, choice)))
    return TableWalk


def run_walks(spec: Spec, inputs: SuiteInputs, open_adapter: Callable[[], Adapter], operations: Iterable[str], *,
              examples: int, steps: int = STEPS_PER_WALK) -> None:
    """Run `examples` random walks (derandomized: the same walks every run); raises WalkFailure."""
    from hypothesis import HealthCheck, settings
    from hypothesis.stateful import run_state_machine_as_test

    machine = make_machine(spec, inputs, open_adapter, operations)
    run_state_machine_as_test(machine, settings=settings(
        max_examples=examples, stateful_step_count=steps, deadline=None, derandomize=True, database=None,
        suppress_health_check=list(HealthCheck), print_blob=False, report_multiple_bugs=False))


def walk_case(spec: Spec, inputs: SuiteInputs, *, examples: int) -> Case:
    def run(opener: Adapter) -> list[str]:
        assert isinstance(opener, Opener), "a walk opens its own runtimes"
        try:
            run_walks(spec, inputs, opener.open, opener.info.capabilities.operations, examples=examples)
        except WalkFailure as failure:
            raise CaseFailed(failure.rule, f"{failure.message}\n{reproduction(failure.steps)}") from None
        return [f"{examples} walks of up to {STEPS_PER_WALK} operations agreed with the table"]

    return Case("walk.table_oracle", WALK, WALK, [f"{examples} random walks (Hypothesis, derandomized), "
                                                  "the table as oracle"], run, fresh_adapter=False)
