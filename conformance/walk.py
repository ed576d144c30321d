"""Random walks: a Hypothesis state machine generated from the table drives an implementation.

One rule per operation the implementation has. Each rule draws a recipe
choice (natural inputs, or one guard turned false: a missing file, a corrupt
model, temperature=-1, ...: the choices come from the guards the operation's
cells use), asks the table for the outcome in the state the model of the
runtime is in, applies the call and checks the reply, the reported state, the
resident data and last_error. On a mismatch Hypothesis shrinks the walk; the
failure names the table rule and prints the minimal sequence as JSON-lines
protocol requests that reproduce it from a fresh runtime.
"""

from __future__ import annotations

import json
import threading
from typing import Callable

from ggufsm.conformance.adapter import Adapter, ImplementationDied, ImplementationHung, Reply
from ggufsm.conformance.cases import MODEL_RESIDENT, Node, resident_after
from ggufsm.conformance.checks import CaseFailed, Expected, Unsupported, check_after, check_reply
from ggufsm.conformance.recipes import NATURAL_VALUES, SuiteInputs, fill_context, realize, with_natural_values

# Guards a walk does not choose: they follow from what the walk already did.
DERIVED_GUARDS = (MODEL_RESIDENT, "context_left")
# Choices that depend on the context size the walk configured (not a lazily initialised default).
NEEDS_CONFIGURED_CONTEXT = ("prompt_fits=false", "fill_context")
STEPS_PER_WALK = 25
NATURAL_WEIGHT = 3


class WalkFailure(AssertionError):
    def __init__(self, rule: str, message: str, steps: list[dict]):
        self.rule, self.message, self.steps = rule, message, steps
        super().__init__(f"{rule}: {message}\n{reproduction(steps)}")


def reproduction(steps: list[dict]) -> str:
    """The walk as protocol requests (docs/protocol.md), to send one at a time to a fresh runtime.
    A cancelled generate streams, and its cancel is sent after the first token event."""
    lines = [f"minimal sequence from a fresh runtime ({len(steps)} operations), as protocol requests "
             "(send each after the previous answer):"]
    for number, step in enumerate(steps, 1):
        if step.get("cancel_at_first_token"):
            lines.append(json.dumps({"id": number, "op": step["op"], "args": {**step["args"], "stream": True}}))
            lines.append(json.dumps({"id": f"{number}-cancel", "op": "cancel", "args": {}})
                         + "   # sent after the first token event, while the generate runs")
        else:
            lines.append(json.dumps({"id": number, "op": step["op"], "args": step["args"]}))
    return "\n".join(lines)


def choices_for(spec, op: str, operations) -> list[str]:
    """"natural", then one choice per guard value the op's cells can be given by a recipe."""
    derived = set(DERIVED_GUARDS) | (set() if "cancel" in operations else {"cancelled"})
    guards = sorted({guard for state in spec.states for guard in spec.guards_for(state, op)} - derived)
    choices = ["natural"] + [f"{guard}={'false' if NATURAL_VALUES[guard] else 'true'}" for guard in guards]
    if op == "generate":
        choices.append("fill_context")
    return choices


def make_machine(spec, inputs: SuiteInputs, open_adapter: Callable[[], Adapter], operations):
    """A RuleBasedStateMachine class for this implementation (its operations only)."""
    from hypothesis import strategies as st
    from hypothesis.stateful import RuleBasedStateMachine, rule

    class TableWalk(RuleBasedStateMachine):
        def __init__(self):
            super().__init__()
            self.adapter = open_adapter()
            self.node = Node(spec.initial_state, False)
            self.configured = False      # init_runtime gave the suite's n_ctx (not a lazy default)
            self.context_full = False
            self.steps: list[dict] = []

        def teardown(self):
            self.adapter.close()

        def apply(self, op: str, choice: str) -> None:
            if choice in NEEDS_CONFIGURED_CONTEXT and not self.configured:
                choice = "natural"
            chosen = _chosen_guards(choice)
            chosen[MODEL_RESIDENT] = self.node.model_resident
            chosen["context_left"] = not self.context_full
            state = self.node.state
            guards = with_natural_values(spec.guards_for(state, op), chosen)
            action = fill_context(inputs) if choice == "fill_context" else realize(op, chosen, inputs)
            step = {"op": op, "args": dict(action.args)}
            if action.cancel_while_running:
                step["cancel_at_first_token"] = True
            self.steps.append(step)
            try:
                reply, cancelled = self.call(action)
            except (ImplementationDied, ImplementationHung) as died:
                raise WalkFailure("the implementation's process", str(died), self.steps) from None
            if "cancelled" in guards:
                guards["cancelled"] = cancelled
            branch = spec.branch(state, op, guards)
            expected = Expected(branch.outcome.to, branch.outcome.error)
            try:
                check_reply(reply, expected, branch.source, f"{state}.{op} ({choice})")
                check_after(self.adapter, spec, expected, branch.source, f"after {state}.{op} ({choice})")
            except CaseFailed as failed:
                raise WalkFailure(failed.rule, failed.message, self.steps) from None
            except Unsupported as unsupported:
                raise WalkFailure("hello.capabilities", f"{op} is listed as supported but answers: {unsupported}",
                                  self.steps) from None
            self.advance(op, choice, branch, expected, reply)

        def call(self, action) -> tuple[Reply, bool]:
            if not action.cancel_while_running:
                return self.adapter.call(action.op, dict(action.args)), False
            cancels: list = []

            def cancel():
                try:
                    cancels.append(self.adapter.call("cancel"))
                except Exception as error:
                    cancels.append(error)

            def on_token(token):
                if not cancels:
                    canceller = threading.Thread(target=cancel)
                    canceller.start()
                    canceller.join(30)

            reply = self.adapter.call(action.op, dict(action.args), on_token=on_token)
            if cancels and isinstance(cancels[0], Exception):
                raise cancels[0]
            landed = reply.code == "Cancelled" or bool(cancels and cancels[0].ok and (cancels[0].value or {}).get("was_running"))
            return reply, landed

        def advance(self, op: str, choice: str, branch, expected: Expected, reply: Reply) -> None:
            outcome = branch.outcome
            if op == "init_runtime" and expected.error is None:
                self.configured = True
            if outcome.lazy_init:
                self.configured = False
            keeps_request = spec.operations[op].kind != "command" or (op == "set_sampling" and expected.error is None)
            if choice == "fill_context" and reply.ok:
                self.context_full = (reply.value or {}).get("finish_reason") == "context"
            elif not keeps_request:
                self.context_full = False
            self.node = Node(expected.to, resident_after(spec, self.node, expected))

    for op in spec.operations:
        if op not in operations:
            continue
        choices = choices_for(spec, op, operations)
        # Natural inputs most of the time, so walks get past the first error into the deeper states.
        weighted = ["natural"] * NATURAL_WEIGHT * max(1, len(choices) - 1) + choices[1:]
        setattr(TableWalk, f"op_{op}", rule(choice=st.sampled_from(weighted))(
            lambda self, choice, _op=op: self.apply(_op, choice)))
    return TableWalk


def _chosen_guards(choice: str) -> dict[str, bool]:
    if choice in ("natural", "fill_context"):
        return {}
    guard, value = choice.split("=")
    return {guard: value == "true"}


def run_walks(spec, inputs: SuiteInputs, open_adapter: Callable[[], Adapter], operations, *, examples: int,
              steps: int = STEPS_PER_WALK) -> None:
    """Run `examples` random walks (derandomized: the same walks every run); raises WalkFailure."""
    from hypothesis import HealthCheck, settings
    from hypothesis.stateful import run_state_machine_as_test

    machine = make_machine(spec, inputs, open_adapter, operations)
    run_state_machine_as_test(machine, settings=settings(
        max_examples=examples, stateful_step_count=steps, deadline=None, derandomize=True, database=None,
        suppress_health_check=list(HealthCheck), print_blob=False, report_multiple_bugs=False))


def walk_case(spec, inputs: SuiteInputs, *, examples: int):
    from ggufsm.conformance.runner import Case

    def run(opener) -> list[str]:
        try:
            run_walks(spec, inputs, opener.open, opener.info.capabilities.operations, examples=examples)
        except WalkFailure as failure:
            raise CaseFailed(failure.rule, f"{failure.message}\n{reproduction(failure.steps)}") from None
        return [f"{examples} walks of up to {STEPS_PER_WALK} operations agreed with the table"]

    return Case("walk.table_oracle", "walk", "walk", [f"{examples} random walks (Hypothesis, derandomized), "
                                                      "the table as oracle"], run, fresh_adapter=False)
