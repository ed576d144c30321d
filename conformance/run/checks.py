"""Judging replies against an Expected: the checks every kind of case shares.

A failed check raises :class:`CaseFailed` naming the rule (the table branch,
e.g. ``cells.Ready.generate.cases[2]``, or a behavioural rule) and what was
expected and observed. An operation the implementation lacks raises
:class:`Unsupported`: the case is "not supported", never a pass. The
expectations come from the plan (``plan.expected``); nothing here reads the
table.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ggufsm.conformance.adapter import INTERNAL_ERROR, Adapter, Reply
from ggufsm.conformance.plan.expected import Expected
from ggufsm.conformance.protocol import schema_problems
from ggufsm.spec.names import EffectField, FinishReason, Operation, RequestEffect, ResidentDatum
from ggufsm.spec.table import KEPT


class CaseFailed(AssertionError):
    def __init__(self, rule: str, message: str):
        super().__init__(f"{rule}: {message}")
        self.rule = rule
        self.message = message


class Unsupported(Exception):
    """The implementation does not have an operation the case needs."""

    def __init__(self, op: str, why: str = ""):
        super().__init__(why or f"the implementation does not support {op}")
        self.op = op


def require_supported(adapter: Adapter, op: str) -> None:
    if op not in adapter.capabilities.operations:
        raise Unsupported(op)


def check_reply(reply: Reply, expected: Expected, rule: str, what: str, args: Mapping[str, Any] | None = None) -> None:
    """The reply's outcome (ok or the named error), every state it reports, and how its generate
    ended match the expectation; with the call's `args`, also how many tokens its generate made."""
    if reply.not_supported:
        raise Unsupported(what, f"{what}: {reply.error.message if reply.error else ''}")
    got = reply.code
    if reply.code == INTERNAL_ERROR:
        raise CaseFailed(rule, f"{what}: the implementation failed unexpectedly ({_message(reply)}); "
                               f"expected {expected.describe()}")
    if got != expected.error:
        observed = f"{got} ({_message(reply)})" if got else "success"
        raise CaseFailed(rule, f"{what}: expected {expected.describe()}, got {observed}"
                               + (f" in state {reply.state}" if reply.state else ""))
    state_after = reply.error.state_after if reply.error is not None else None
    if state_after not in (None, expected.to):
        raise CaseFailed(rule, f"{what}: {got} says state_after={state_after}, expected {expected.to}")
    if reply.state is not None and reply.state != expected.to:
        raise CaseFailed(rule, f"{what}: expected state {expected.to} after {expected.error or 'success'}, "
                               f"the implementation reports {reply.state}")
    check_finish_reason(reply, expected, rule, what)
    if args is not None:
        check_generated_count(reply, args, rule, what)


def check_generated_count(reply: Reply, args: Mapping[str, Any], rule: str, what: str) -> None:
    """A generate makes up to max_tokens tokens, and exactly max_tokens when it ends for `length`
    (the table's generate and finish reason)."""
    value, max_tokens = reply.value, args.get("max_tokens")
    if not reply.ok or not isinstance(value, dict) or "token_ids" not in value or not isinstance(max_tokens, int):
        return
    made = len(value["token_ids"])
    if made > max_tokens:
        raise CaseFailed(f"{rule} + operations.generate", f"{what}: generate makes up to max_tokens={max_tokens} "
                                                          f"tokens, the reply carries {made}")
    if value.get("finish_reason") == FinishReason.length and made != max_tokens:
        raise CaseFailed(f"{rule} + finish_reasons.length", f"{what}: finish_reason length means max_tokens="
                                                            f"{max_tokens} tokens were generated, the reply carries {made}")


def check_finish_reason(reply: Reply, expected: Expected, rule: str, what: str) -> None:
    """A generate's finish_reason, where the recipe decides it (an error's partial value may omit it)."""
    finish = reply.value.get("finish_reason") if isinstance(reply.value, dict) else None
    if expected.finish_reason is None or (finish is None and not reply.ok):
        return
    if finish != expected.finish_reason:
        raise CaseFailed(rule, f"{what}: the generate should end with finish_reason {expected.finish_reason}, "
                               f"it reports {finish!r}")
    value = reply.value if isinstance(reply.value, dict) else {}
    n_ctx = expected.after.n_ctx if expected.after is not None else None
    if finish == FinishReason.context and n_ctx and "prompt_tokens" in value and "token_ids" in value:
        used = value["prompt_tokens"] + len(value["token_ids"])
        if used != n_ctx:
            raise CaseFailed(rule, f"{what}: a generate that filled the context should have used all {n_ctx} "
                                   f"positions: {value['prompt_tokens']} prompt + {len(value['token_ids'])} generated")


def _message(reply: Reply) -> str:
    return reply.error.message if reply.error is not None else ""


@dataclass(frozen=True)
class Observed:
    """What the implementation reported after a call: its diagnostics (None where it gives none)."""

    diagnostics: dict[str, Any] | None = None

    @property
    def structured(self) -> bool:
        return self.diagnostics is not None and all(key in self.diagnostics for key in STRUCTURED_FIELDS)

    def field(self, name: str) -> Any:
        return (self.diagnostics or {}).get(name)


STRUCTURED_FIELDS = ("resident", "model", "request", "last_error", "sampling", "config")
# The counters that say which request is open and how far it got.
REQUEST_COUNTERS = ("prompt_tokens", "generated_tokens")


@dataclass(frozen=True)
class CallContext:
    """What the checks of one call need beyond its Expected: the call's arguments and reply, what was
    observed before it, and the identity (file name, sha256) of each of the suite's model files."""

    args: dict[str, Any]
    reply: Reply | None = None
    before: Observed | None = None
    identities: dict[str, tuple[str, str]] | None = None
    generated: list[int] | None = None   # the tokens a streamed generate's events carried


def observe(adapter: Adapter) -> Observed:
    """The diagnostics now (an implementation without them: an empty observation)."""
    if not adapter.capabilities.diagnostics:
        return Observed()
    reply = adapter.call(Operation.diagnostics)
    if not reply.ok or not isinstance(reply.value, dict) or "resident" not in reply.value:
        raise CaseFailed("resident_data", f"diagnostics did not answer with a resident list: {reply.describe()}")
    if adapter.capabilities.structured_diagnostics:
        problems = schema_problems(reply.value, "structured_diagnostics")
        if problems:
            raise CaseFailed("protocol.structured_diagnostics", f"diagnostics break the 1.1 shape: {'; '.join(problems)}")
    return Observed(reply.value)


def check_resident(observed: Observed, expected: Expected, rule: str, what: str) -> None:
    """Resident data after the call: exactly what the effects leave where the plan knows it (after
    a call in a stable state), else every required datum and nothing outside required + optional."""
    if observed.diagnostics is None:
        return
    present = set(observed.diagnostics["resident"])
    problems: list[str] = []
    if expected.resident is not None:
        missing, extra = sorted(expected.resident - present), sorted(present - expected.resident)
        problems += [f"missing {', '.join(missing)}"] if missing else []
        problems += [f"holds {', '.join(extra)}, which the effects left none of in {expected.to}"] if extra else []
    else:
        missing = sorted(expected.required - present)
        forbidden = sorted(present - expected.required - expected.optional)
        problems += [f"missing {', '.join(missing)}"] if missing else []
        problems += [f"holds {', '.join(forbidden)}, which {expected.to} does not allow"] if forbidden else []
        if not forbidden and (ResidentDatum.model in present) != expected.model_resident:
            problems.append("holds no model where the one installed before should still be" if expected.model_resident
                            else "holds a model where none should be installed")
    if problems:
        raise CaseFailed(f"{rule} + states.{expected.to}.resident", f"{what}: resident data in {expected.to}: "
                                                                    f"{'; '.join(problems)} (diagnostics lists "
                                                                    f"{sorted(present)})")


def check_last_error(adapter: Adapter, expected: Expected, rule: str, what: str) -> None:
    """The last_error query: exactly the code the effects leave (the error just raised, the one
    kept from before, or none) where the plan knows it; else the state's rule."""
    if Operation.last_error not in adapter.capabilities.operations:
        return
    reply = adapter.call(Operation.last_error)
    if not reply.ok:
        raise CaseFailed(rule, f"{what}: the last_error query failed: {reply.describe()}")
    recorded = reply.value.get("code") if isinstance(reply.value, dict) else None
    if expected.after is not None:
        wanted = expected.after.last_error
        if recorded != wanted:
            effect = expected.effects.get(EffectField.last_error, "")
            raise CaseFailed(f"{rule} + effects.last_error", f"{what}: last_error {effect} should leave "
                                                             f"{wanted or 'none'}, the query answers {reply.value!r}")
        return
    if ResidentDatum.last_error in expected.required and expected.error and recorded != expected.error:
        raise CaseFailed(f"{rule} + states.{expected.to}.resident",
                         f"{what}: {expected.to} requires last_error = {expected.error}, "
                         f"the query answers {reply.value!r}")
    allowed = expected.required | expected.optional
    if ResidentDatum.last_error not in allowed and reply.value is not None:
        raise CaseFailed(f"{rule} + states.{expected.to}.resident",
                         f"{what}: {expected.to} allows no last_error, the query answers {reply.value!r}")


def check_state_query(adapter: Adapter, expected_state: str, rule: str, what: str) -> None:
    if not adapter.capabilities.state or Operation.state not in adapter.capabilities.operations:
        return
    reply = adapter.call(Operation.state)
    if not reply.ok or reply.value != expected_state:
        raise CaseFailed(rule, f"{what}: expected state {expected_state}, the state query answers {reply.describe()} "
                               f"value={reply.value!r}")


def check_after(adapter: Adapter, expected: Expected, rule: str, what: str,
                context: CallContext | None = None) -> Observed:
    """Everything observable about the state a call left; returns what diagnostics said (the next
    call's `before`)."""
    check_state_query(adapter, expected.to, rule, what)
    observed = observe(adapter)
    check_resident(observed, expected, rule, what)
    check_last_error(adapter, expected, rule, what)
    if context is not None and observed.structured and expected.after is not None:
        check_effects(observed, expected, rule, what, context)
    return observed


def check_effects(observed: Observed, expected: Expected, rule: str, what: str, context: CallContext) -> None:
    """The effects the structured diagnostics show: which model file is installed, the open request's
    counters against the reply and against what was there before, the sampling and configuration."""
    after = expected.after
    assert after is not None
    before = context.before if context.before is not None and context.before.structured else None
    problems: list[str] = []
    model = observed.field("model")
    if after.model is None and model is not None:
        problems.append(f"model: no model should be installed, diagnostics name {model.get('file')!r}")
    elif after.model is not None and context.identities is not None:
        file, sha256 = context.identities[after.model]
        if model is None or model.get("sha256") != sha256:
            shown = f"{model.get('file')!r} ({str(model.get('sha256'))[:12]}…)" if model else "none"
            problems.append(f"model: {expected.effects.get(EffectField.model)} should leave {file} ({sha256[:12]}…) "
                            f"installed, diagnostics name {shown}")
    problems += _request_problems(observed, expected, before, context.reply, context.generated)
    problems += _settings_problems(observed, expected, before, context.args, EffectField.sampling, "sampling")
    problems += _settings_problems(observed, expected, before, context.args, EffectField.config, "config")
    if problems:
        raise CaseFailed(f"{rule} + effects", f"{what}: " + "; ".join(problems))


def _request_problems(observed: Observed, expected: Expected, before: Observed | None, reply: Reply | None,
                      generated: list[int] | None) -> list[str]:
    after, effect = expected.after, expected.effects.get(EffectField.request)
    assert after is not None
    request = observed.field("request")
    if not after.request:
        return [] if request is None else [f"request: no request should be open, diagnostics show {request}"]
    if request is None:
        return [f"request: {effect} should leave a request open, diagnostics show none"]
    counters = {key: request.get(key) for key in REQUEST_COUNTERS}
    previous = before.field("request") if before is not None else None
    previous_counters = {key: previous.get(key) for key in REQUEST_COUNTERS} if previous else None
    if effect == RequestEffect.new and reply is not None:
        tokens = tokens_of(reply) if isinstance(reply.value, dict) and "token_ids" in reply.value else generated
        value = reply.value if isinstance(reply.value, dict) else {}
        # A generate stopped by the end-of-generation token may leave that token out of its reply.
        counted = {len(tokens), len(tokens) + 1} if tokens is not None and value.get("finish_reason") == \
            FinishReason.stop else {len(tokens)} if tokens is not None else None
        if counted is not None and counters["generated_tokens"] not in counted:
            return [f"request: the new request generated {len(tokens or [])} token(s), diagnostics count "
                    f"{counters['generated_tokens']}"]
        if "prompt_tokens" in value and counters["prompt_tokens"] != value["prompt_tokens"]:
            return [f"request: the reply says {value['prompt_tokens']} prompt tokens, diagnostics "
                    f"{counters['prompt_tokens']}"]
    if effect == RequestEffect.extended and previous_counters is not None:
        wanted = {**previous_counters, "generated_tokens": (previous_counters["generated_tokens"] or 0) + 1}
        if counters != wanted:
            return [f"request: one token appended should give {wanted}, diagnostics show {counters}"]
    if effect == KEPT and previous_counters is not None and counters != previous_counters:
        return [f"request: kept, yet its counters went from {previous_counters} to {counters}"]
    return []


def _settings_problems(observed: Observed, expected: Expected, before: Observed | None, args: dict[str, Any],
                       effect_field: str, key: str) -> list[str]:
    effect, now = expected.effects.get(effect_field), observed.field(key)
    if effect == KEPT:
        if before is not None and now != before.field(key):
            return [f"{key}: kept, yet it went from {before.field(key)} to {now}"]
        return []
    given = {name: value for name, value in args.items() if not isinstance(value, dict)}
    if now is None or expected.after is None:
        return [f"{key}: {effect}, yet diagnostics show none"] if now is None else []
    differing = {name: now.get(name) for name, value in given.items() if name in now and now.get(name) != value}
    return [f"{key}: {effect} {given}, diagnostics show {differing}"] if differing else []


def tokens_of(reply: Reply) -> list[Any]:
    """The token ids a generate's reply (or a cancelled one's partial value) carries."""
    return list((reply.value or {}).get("token_ids", [])) if isinstance(reply.value, dict) else []
