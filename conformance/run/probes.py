"""Probes: calls made after a case's call, to see effects that only outputs show (``plan.cases.Probe``).

They work on any model: what "greedy" gives is asked of the same handle
afterwards (greedy tokens are deterministic, and a longer greedy generate
starts with a shorter one's tokens), so a probe needs no knowledge of the
model. The :class:`RequestTracker` follows the open request through a case's
calls (its prompt and tokens, whether its tokens were greedy), from the
replies and token events the implementation gave.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ggufsm.conformance.adapter import Adapter, Reply
from ggufsm.conformance.plan.cases import Probe
from ggufsm.conformance.plan.expected import Expected
from ggufsm.conformance.plan.recipes import GREEDY, PROBE_SAMPLING, Action, SuiteInputs
from ggufsm.conformance.run.checks import CaseFailed, Unsupported, check_state_query, tokens_of
from ggufsm.spec.names import EffectField, Operation, RequestEffect, SamplingEffect, State


@dataclass
class OpenRequest:
    prompt: Any
    tokens: list[int] = field(default_factory=list)
    greedy: bool = True      # every token so far was the greedy one


class RequestTracker:
    """The open request as a case's calls leave it."""

    def __init__(self) -> None:
        self.request: OpenRequest | None = None

    def follow(self, action: Action, expected: Expected, reply: Reply, streamed: list[dict[str, Any]] | None = None) -> None:
        after = expected.after
        if after is None:
            return
        if not after.request:
            self.request = None
            return
        effect = expected.effects.get(EffectField.request)
        if effect == RequestEffect.new:
            sampling = dict(action.args.get("sampling") or {})
            tokens = tokens_of(reply) if isinstance(reply.value, dict) and "token_ids" in reply.value else \
                [int(token["token_id"]) for token in streamed or []]
            self.request = OpenRequest(action.args.get("prompt"), [int(token) for token in tokens],
                                       greedy=sampling.get("temperature") == 0)
        elif effect == RequestEffect.extended and self.request is not None and isinstance(reply.value, dict):
            self.request.tokens.append(int(reply.value["token_id"]))
        if expected.effects.get(EffectField.sampling) == SamplingEffect.applied and self.request is not None:
            self.request.greedy = dict(action.args) == dict(GREEDY)


def run_probe(probe: Probe, adapter: Adapter, tracker: RequestTracker, inputs: SuiteInputs, rule: str,
              model_resident: bool, open_handle: Callable[[], Adapter] | None = None) -> str:
    """Run one probe after the case's call; returns a note, raises CaseFailed. `open_handle` gives
    another runtime beside the case's (the probes of a file change use it)."""
    if probe == Probe.other_handle_carries_on:
        return _other_handle_carries_on(open_handle, inputs, rule)
    if probe == Probe.free_after_file_change:
        return _free_after_file_change(adapter, rule)
    if probe == Probe.sampling_applies_to_next_request:
        return _sampling_applies_to_next_request(adapter, inputs, rule, model_resident)
    request = tracker.request
    if request is None or request.prompt is None:
        raise CaseFailed(rule, f"probe {probe}: no open request to probe (the case's calls should have left one)")
    if probe == Probe.continues_request:
        return _continues_request(adapter, request, rule)
    return _sampling_reaches_open_request(adapter, request, inputs, rule)


def _ok(adapter: Adapter, op: str, args: Mapping[str, Any], rule: str, why: str) -> Any:
    reply = adapter.call(op, dict(args))
    if not reply.ok:
        raise CaseFailed(rule, f"{why}: {op}({_brief(args)}) should succeed, got {reply.describe()}")
    return reply.value


def _brief(args: Mapping[str, Any]) -> str:
    return ", ".join(f"{key}={value!r}"[:48] for key, value in args.items())


def greedy_generate(adapter: Adapter, prompt: Any, n: int, rule: str, why: str) -> list[int]:
    value = _ok(adapter, Operation.generate, {"prompt": prompt, "max_tokens": n, "stop_at_eos": False,
                                              "sampling": dict(GREEDY)}, rule, why)
    return [int(token) for token in value["token_ids"]]


def _continues_request(adapter: Adapter, request: OpenRequest, rule: str) -> str:
    if not request.greedy:
        return "probe continues_request: the open request was not greedy; not probed"
    why = "probe continues_request"
    token = int(_ok(adapter, Operation.generate_next_token, {}, rule, why)["token_id"])
    n = len(request.tokens)
    whole = greedy_generate(adapter, request.prompt, n + 1, rule, why)
    if whole[:n] != request.tokens or whole[n] != token:
        raise CaseFailed(f"{rule} + effects.request", f"{why}: the open request held {request.tokens} and continued "
                                                      f"with {token}; a greedy generate of its prompt gives {whole}")
    return f"the open request ({n} tokens) continued greedily with {token}"


def _sampling_reaches_open_request(adapter: Adapter, request: OpenRequest, inputs: SuiteInputs, rule: str) -> str:
    why = "probe sampling_reaches_open_request"
    probed = [int(_ok(adapter, Operation.generate_next_token, {}, rule, why)["token_id"])
              for _ in range(inputs.probe_tokens)]
    n = len(request.tokens)
    whole = greedy_generate(adapter, request.prompt, n + inputs.probe_tokens, rule, why)
    if whole[:n] != request.tokens:
        raise CaseFailed(rule, f"{why}: the open request held {request.tokens}, yet a greedy generate of its prompt "
                               f"gives {whole[:n]}")
    if probed == whole[n:]:
        raise CaseFailed(f"{rule} + effects.sampling", f"{why}: after set_sampling({_brief(PROBE_SAMPLING)}) the open "
                                                       f"request went on greedily ({probed}): the new settings did not "
                                                       "reach it")
    return f"after the new settings the open request drew {probed}, not the greedy {whole[n:]}"


def _sampling_applies_to_next_request(adapter: Adapter, inputs: SuiteInputs, rule: str, model_resident: bool) -> str:
    why = "probe sampling_applies_to_next_request"
    if not model_resident:
        _ok(adapter, Operation.load_model, {"path": inputs.model}, rule, why)
    args = {"prompt": inputs.prompt, "max_tokens": inputs.probe_tokens, "stop_at_eos": False}
    plain = [int(token) for token in _ok(adapter, Operation.generate, args, rule, why)["token_ids"]]
    given = [int(token) for token in
             _ok(adapter, Operation.generate, {**args, "sampling": dict(PROBE_SAMPLING)}, rule, why)["token_ids"]]
    if plain != given:
        raise CaseFailed(f"{rule} + effects.sampling", f"{why}: a generate after set_sampling({_brief(PROBE_SAMPLING)}) "
                                                       f"gave {plain}, one given those settings {given}")
    return f"the next request drew with the settings set: {plain}"


def _other_handle_carries_on(open_handle: Callable[[], Adapter] | None, inputs: SuiteInputs, rule: str) -> str:
    why = "probe other_handle_carries_on (after the case's copy of the model file was changed)"
    try:
        if open_handle is None:
            raise Unsupported("open_handle", "the case was run without an opener of other runtimes")
        other = open_handle()
    except Unsupported as unsupported:
        return f"{why}: not checked: {unsupported}"
    if Operation.init_runtime in other.capabilities.operations:
        _ok(other, Operation.init_runtime, inputs.init_args, rule, why)
    _ok(other, Operation.load_model, {"path": inputs.model}, rule, why)
    tokens = greedy_generate(other, inputs.prompt, inputs.generate_tokens, rule, why)
    if len(tokens) != inputs.generate_tokens:
        raise CaseFailed(rule, f"{why}: the other runtime generated {len(tokens)} of {inputs.generate_tokens} tokens")
    return f"another runtime on the intact model generated {tokens}"


def _free_after_file_change(adapter: Adapter, rule: str) -> str:
    why = "probe free_after_file_change"
    _ok(adapter, Operation.free, {}, rule, why)
    check_state_query(adapter, State.Freed, f"{rule} + cells.RecoverableError.free", why)
    return "free succeeded on the runtime whose file changed"
