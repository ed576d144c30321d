"""The suite as data: the planned cases as one JSON document, for harnesses in any language.

As the WebAssembly spec ships its test suite as ``.wast`` files, the kit
ships ``conformance/suite.json``: ``ggufsm conformance cases --json``, planned
with every operation, the model files as placeholders. Its shape is
``conformance/suite.schema.json``; docs/conformance/suite.md says how a
harness runs it. ``plans_from_document`` reads it back into the very plans
the Python runner executes (a test holds the two equal), so nothing a case
checks is missing from the file.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ggufsm.conformance.plan.behaviours import BEHAVIOUR_RULES
from ggufsm.conformance.plan.cases import (
    CallWhileRunning,
    CancelWhileCallRuns,
    CasePlan,
    Concurrency,
    ModelFileChange,
    Probe,
    Trigger,
    plan_suite,
)
from ggufsm.conformance.plan.expected import Expected, Trace
from ggufsm.conformance.plan.paths import Node, Step
from ggufsm.conformance.plan.recipes import RECIPES, Action, FileChange, SuiteInputs
from ggufsm.spec import Spec
from ggufsm.spec.names import ErrorCode, FinishReason, Guard, Operation, ResidentDatum, State

FORMAT = "ggufsm-conformance-suite"
FORMAT_VERSION = "1.2"
SUITE_PATH = Path(__file__).resolve().parent.parent / "suite.json"
SCHEMA_PATH = SUITE_PATH.with_name("suite.schema.json")
REGENERATE = "ggufsm conformance cases --json > conformance/suite.json"

# What each placeholder of the suite's inputs stands for.
PLACEHOLDERS: Mapping[str, str] = {
    "model": "a model the implementation runs (the kit's default: a tiny synthetic llama, seed 1)",
    "alt_model": "a different model the implementation runs (replace_model installs it; the kit's: seed 2)",
    "corrupt_model": "a file that is not well-formed GGUF (the kit's: the model with a bad magic)",
    "unsupported_model": "well-formed GGUF whose architecture no runtime runs",
    "missing_model": "a path where no file exists",
    "long_prompt": "a prompt of more tokens than the n_ctx the case's init_runtime gives "
                   "(the kit's: 4 x n_ctx distinct words, 'word0 and word1 and ...')",
    "eos_prompt": "a prompt (text or token ids) whose greedy continuation reaches an end-of-generation token "
                  "within eos_within tokens (the kit's: one token of the successor model, 3 tokens before it)",
    "overflow_model": "a model the implementation runs, every weight finite, whose forward overflows float32 on one "
                      "token (the kit's: conformance/fixtures/overflow.py); a case with runs_on overflow_model "
                      "uses it wherever it names <model>",
    "overflow_prompt": "a prompt (text or token ids) after which the overflow model's logits are not finite "
                       "(the kit's: the trigger token)",
    "before_overflow_prompt": "a prompt whose greedy next token on the overflow model is the one after which its "
                              "logits are not finite (the kit's: the trigger token's predecessor on the cycle)",
}


def placeholder(name: str) -> str:
    return f"<{name}>"


# ─── writing ─────────────────────────────────────────────────────────────────


def suite_document(spec: Spec, inputs: SuiteInputs, plans: Sequence[CasePlan] | None = None) -> dict[str, Any]:
    """The document for `plans` (default: every case of the table, planned with every operation)."""
    if plans is None:
        plans = plan_suite(spec, inputs)[0]
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "spec_version": spec.version,
        "generated_by": REGENERATE.split(" >")[0],
        "inputs": {
            "placeholders": {placeholder(name): meaning for name, meaning in PLACEHOLDERS.items()},
            "values": {name: getattr(inputs, name) for name in ("n_ctx", "n_threads", "prompt", "generate_tokens",
                                                                  "long_generation", "fill_tokens", "cancel_n_ctx",
                                                                  "eos_within", "n_vocab", "probe_tokens")},
        },
        "recipes": {guard: {"natural": recipe.natural, "true": recipe.when_true, "false": recipe.when_false}
                    for guard, recipe in RECIPES.items()},
        "probes": {probe.value: _PROBE_MEANINGS[probe] for probe in Probe},
        "cases": [case_to_json(plan) for plan in plans],
        "behaviours": [{"id": rule.id, "needs": list(rule.needs), "statement": rule.statement}
                       for rule in BEHAVIOUR_RULES],
    }


def render(document: Mapping[str, Any]) -> str:
    """Stable text for diffs and readers: keys in the order written, each step of a case on one
    line, and any value that fits in INLINE_WIDTH characters on one line."""
    return _render(document, 0) + "\n"


INLINE_WIDTH = 100


def _render(value: Any, depth: int) -> str:
    compact = json.dumps(value, ensure_ascii=False, separators=(", ", ": "))
    is_step = isinstance(value, Mapping) and "expect" in value
    if not isinstance(value, (Mapping, list)) or is_step or len(compact) <= INLINE_WIDTH or not value:
        return compact
    inner = " " * (depth + 1)
    if isinstance(value, list):
        items = [inner + _render(item, depth + 1) for item in value]
        return "[\n" + ",\n".join(items) + "\n" + " " * depth + "]"
    items = [f"{inner}{json.dumps(key, ensure_ascii=False)}: {_render(item, depth + 1)}" for key, item in value.items()]
    return "{\n" + ",\n".join(items) + "\n" + " " * depth + "}"


_PROBE_MEANINGS: Mapping[Probe, str] = {
    Probe.continues_request: "after the call: generate_next_token, then a greedy generate of the open request's prompt "
                             "for its tokens + 1; the latter starts with the request's tokens and ends with the former",
    Probe.sampling_reaches_open_request: "after the call (hot sampling set with a greedy request open): probe_tokens x "
                                         "generate_next_token, then a greedy generate of the prompt for all the "
                                         "tokens; the probed tokens must not be its greedy continuation",
    Probe.sampling_applies_to_next_request: "after the call (sampling set): load the model if none is installed; a "
                                            "generate with no sampling of its own equals one given the call's settings",
    Probe.other_handle_carries_on: "after the call (a file_change case): a second runtime (open_handle where the "
                                   "implementation has handles, else noted as not checked) is initialised with the "
                                   "case's init_runtime args, loads <model> itself (intact: only the case's copy was "
                                   "changed) and generates generate_tokens greedy tokens",
    Probe.free_after_file_change: "after the call (a file_change case): free on the case's runtime succeeds and the "
                                  "state query answers Freed",
}


def case_to_json(plan: CasePlan) -> dict[str, Any]:
    return {"id": plan.id, "cell": plan.cell, "state": plan.state, "op": plan.op,
            "conditions": dict(plan.conditions), "rule": plan.rule, "effect": plan.effect,
            "variant": plan.variant, "probes": [probe.value for probe in plan.probes],
            "path": [step_to_json(step) for step in plan.path], "call": step_to_json(plan.call),
            "concurrency": _concurrency_to_json(plan.concurrency),
            "file_change": None if plan.file_change is None else {"file": plan.file_change.file,
                                                                  "change": plan.file_change.how.value},
            "runs_on": plan.runs_on}


def step_to_json(step: Step) -> dict[str, Any]:
    return {"op": step.action.op, "args": dict(step.action.args), "from": step.start.state,
            "installs": step.action.installs, "expect": expected_to_json(step.expected), "rule": step.rule}


def expected_to_json(expected: Expected) -> dict[str, Any]:
    after = expected.after
    return {"error": expected.error, "state": expected.to, Guard.model_resident: expected.model_resident,
            "resident": {"required": sorted(expected.required), "optional": sorted(expected.optional)},
            "finish_reason": expected.finish_reason, "effects": expected.changes(),
            "after": None if after is None or expected.resident is None else {
                "resident": sorted(expected.resident), "last_error": after.last_error, "model": after.model,
                "request": after.request, "n_ctx": after.n_ctx}}


def _concurrency_to_json(concurrency: Concurrency | None) -> dict[str, Any] | None:
    if isinstance(concurrency, CallWhileRunning):
        return {"kind": "call_while_running", "running": step_to_json(concurrency.running),
                "send_call_at": concurrency.send_call_at, "call_waits": concurrency.call_waits}
    if isinstance(concurrency, CancelWhileCallRuns):
        return {"kind": "cancel_while_call_runs", "cancel": step_to_json(concurrency.cancel),
                "send_cancel_at": concurrency.send_cancel_at}
    return None


# ─── reading ─────────────────────────────────────────────────────────────────


def read_document(path: Path = SUITE_PATH) -> dict[str, Any]:
    document = json.loads(Path(path).read_text(encoding="utf-8"))
    if document.get("format") != FORMAT or str(document.get("format_version", "")).split(".")[0] != "1":
        raise ValueError(f"{path}: not a {FORMAT} document of version 1.x")
    return document


def plans_from_document(document: Mapping[str, Any]) -> list[CasePlan]:
    return [case_from_json(case) for case in document["cases"]]


def case_from_json(case: Mapping[str, Any]) -> CasePlan:
    """A case back as a plan. Nodes are rebuilt by following the steps: a path starts from a fresh
    runtime with no model, and each step starts where the one before it ended."""
    path: list[Step] = []
    model_resident = False
    for item in case["path"]:
        path.append(step_from_json(item, model_resident))
        model_resident = path[-1].expected.model_resident
    data = case["concurrency"]
    concurrency: Concurrency | None = None
    if data is not None and data["kind"] == "call_while_running":
        running = step_from_json(data["running"], model_resident)
        call_waits = bool(data["call_waits"])
        call = step_from_json(case["call"], running.expected.model_resident if call_waits else model_resident)
        concurrency = CallWhileRunning(running, Trigger(data["send_call_at"]), call_waits)
    else:
        call = step_from_json(case["call"], model_resident)
    if data is not None and data["kind"] == "cancel_while_call_runs":
        concurrency = CancelWhileCallRuns(step_from_json(data["cancel"], model_resident),
                                          Trigger(data["send_cancel_at"]))
    change = case.get("file_change")
    return CasePlan(case["id"], State(case["state"]), Operation(case["op"]),
                    tuple((Guard(name), bool(value)) for name, value in case["conditions"].items()),
                    case["rule"], case["effect"], tuple(path), call, concurrency, case.get("variant", ""),
                    tuple(Probe(probe) for probe in case.get("probes", ())),
                    None if change is None else ModelFileChange(change["file"], FileChange(change["change"])),
                    case.get("runs_on"))


def step_from_json(item: Mapping[str, Any], model_resident_before: bool) -> Step:
    expected = expected_from_json(item["expect"])
    action = Action(Operation(item["op"]), dict(item["args"]), ends=expected.finish_reason,
                    installs=item.get("installs"))
    return Step(action, Node(State(item["from"]), model_resident_before), expected, item["rule"])


def expected_from_json(data: Mapping[str, Any]) -> Expected:
    from types import MappingProxyType

    from ggufsm.spec import load_spec

    error, finish, after = data["error"], data["finish_reason"], data.get("after")
    trace = None if after is None else Trace(ErrorCode(after["last_error"]) if after["last_error"] else None,
                                             after["model"], bool(after["request"]), after["n_ctx"])
    kept = {name: "kept" for name in load_spec().effect_fields}
    return Expected(State(data["state"]), ErrorCode(error) if error is not None else None,
                    bool(data[Guard.model_resident]),
                    frozenset(map(ResidentDatum, data["resident"]["required"])),
                    frozenset(map(ResidentDatum, data["resident"]["optional"])),
                    FinishReason(finish) if finish is not None else None,
                    None if after is None else frozenset(map(ResidentDatum, after["resident"])), trace,
                    MappingProxyType({**kept, **data.get("effects", {})}))
