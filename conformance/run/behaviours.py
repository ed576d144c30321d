"""The behavioural rules' checks (the rules themselves, as data: ``plan.behaviours``).

Each check opens fresh runtimes, one after another, and compares what they
produce: greedy tokens are deterministic, so two roads to the same point
must give the same output. Where a rule expects an error, the error comes
from the table.
"""

from __future__ import annotations

import statistics
import threading
from collections.abc import Callable, Mapping
from itertools import pairwise
from pathlib import Path
from typing import Any

from ggufsm.conformance.adapter import Adapter, MemoryReading, Reply, TokenCallback
from ggufsm.conformance.plan.behaviours import (
    BEHAVIOUR_RULES,
    CONCURRENT_GENERATES,
    CONTINUED_TOKENS,
    HANDLE_CONTEXT_FACTOR,
    LEAK_FLOOR_BYTES,
    LEAK_FRACTION,
    MEMORY_CYCLES,
    MEMORY_WARMUP_CYCLES,
    OTHER_SEED,
    SEEDED,
    SEEDED_TOKENS,
    BehaviourRule,
)
from ggufsm.conformance.plan.cases import Trigger
from ggufsm.conformance.plan.expected import natural_outcome
from ggufsm.conformance.plan.recipes import GREEDY, PROBE_SAMPLING, SuiteInputs
from ggufsm.conformance.run.case import BEHAVIOUR, Case, Opener
from ggufsm.conformance.run.checks import CaseFailed, Unsupported
from ggufsm.spec import Spec
from ggufsm.spec.names import ErrorCode, FinishReason, Operation, State


class Session:
    """Calls on one runtime that must succeed (a failure names the rule and the call)."""

    def __init__(self, adapter: Adapter, rule: str):
        self.adapter, self.rule = adapter, rule

    def call(self, op: str, args: Mapping[str, Any] | None = None, on_token: TokenCallback | None = None) -> Reply:
        reply = self.adapter.call(op, dict(args or {}), on_token=on_token)
        if reply.not_supported:
            raise Unsupported(op)
        return reply

    def ok(self, op: str, args: Mapping[str, Any] | None = None) -> Any:
        reply = self.call(op, args)
        if not reply.ok:
            raise CaseFailed(self.rule, f"{op}({_brief(args)}) should succeed here, got {reply.describe()}")
        return reply.value

    def error(self, op: str, args: Mapping[str, Any] | None, expected: str | None, why: str) -> None:
        reply = self.call(op, args)
        if reply.code != expected:
            raise CaseFailed(self.rule, f"{why}: {op}({_brief(args)}) should fail with {expected}, "
                                        f"got {reply.describe()}")

    def generate(self, prompt: str, max_tokens: int, sampling: Mapping[str, Any] = GREEDY) -> dict[str, Any]:
        return self.ok(Operation.generate, generate_args(prompt, max_tokens, sampling))

    def continues(self) -> bool:
        return Operation.generate_next_token in self.adapter.capabilities.operations


def generate_args(prompt: str, max_tokens: int, sampling: Mapping[str, Any] = GREEDY) -> dict[str, Any]:
    return {"prompt": prompt, "max_tokens": max_tokens, "stop_at_eos": False, "sampling": dict(sampling)}


def _brief(args: Mapping[str, Any] | None) -> str:
    return ", ".join(f"{key}={value!r}"[:60] for key, value in (args or {}).items())


class Context:
    """What a behaviour check works with. Runtimes are used one after another, never interleaved:
    a protocol child serves one runtime at a time (opening the next drops the previous)."""

    def __init__(self, opener: Opener, spec: Spec, inputs: SuiteInputs, rule: str):
        self.opener, self.spec, self.inputs, self.rule = opener, spec, inputs, rule

    def fresh(self, model: str | None = None) -> Session:
        """A new runtime, configured and with a model installed."""
        session = Session(self.opener.open(), self.rule)
        session.ok(Operation.init_runtime, self.inputs.init_args)
        session.ok(Operation.load_model, {"path": model or self.inputs.model})
        return session

    def table_error(self, state: str, op: str, **guards: bool) -> ErrorCode | None:
        """The error the table gives `op` in `state` (natural guard values unless given)."""
        error = natural_outcome(self.spec, state, op, guards).error
        return ErrorCode(error) if error is not None else None

    def state_after(self, state: str, op: str, **guards: bool) -> State:
        return State(natural_outcome(self.spec, state, op, guards).to)

    def same_tokens(self, got: Mapping[str, Any], expected: Mapping[str, Any], what: str) -> None:
        if got["token_ids"] != expected["token_ids"]:
            raise CaseFailed(self.rule, f"{what}: tokens {got['token_ids']} differ from {expected['token_ids']}")

    def fresh_generate(self, prompt: str, max_tokens: int, sampling: Mapping[str, Any] = GREEDY) -> dict[str, Any]:
        return self.fresh().generate(prompt, max_tokens, sampling)

    def fresh_seeded(self, n: int, model: str) -> list[int]:
        """What a fresh runtime draws with PROBE_SAMPLING set, one token by generate, then generate_next_token."""
        session = self.fresh(model)
        session.ok(Operation.set_sampling, dict(PROBE_SAMPLING))
        tokens = list(session.ok(Operation.generate, {"prompt": self.inputs.prompt, "max_tokens": 1,
                                                      "stop_at_eos": False})["token_ids"])
        tokens += [session.ok(Operation.generate_next_token)["token_id"] for _ in range(n - 1)]
        return tokens

    def second_handle(self) -> Session:
        """Another runtime beside the one opened last, in the same process (Unsupported without handles)."""
        if not self.opener.info.capabilities.handles:
            raise Unsupported(Operation.init_runtime, "the implementation has no handles: a second runtime in "
                                                      "the same process cannot be opened")
        return Session(self.opener.open_handle(), self.rule)


def failed_replace_keeps_output(ctx: Context) -> list[str]:
    inputs = ctx.inputs
    session = ctx.fresh()
    before = session.generate(inputs.prompt, inputs.generate_tokens)
    for path in (inputs.corrupt_model, inputs.missing_model, inputs.unsupported_model):
        reply = session.call(Operation.replace_model, {"path": path})
        if reply.ok:
            raise CaseFailed(ctx.rule, f"replace_model({path}) succeeded with a model that cannot be installed")
        after = session.generate(inputs.prompt, inputs.generate_tokens)
        ctx.same_tokens(after, before, f"after the failed replace_model({Path(path).name}) ({reply.code})")
    session.ok(Operation.replace_model, {"path": inputs.alt_model})
    replaced = session.generate(inputs.prompt, inputs.generate_tokens)
    direct = ctx.fresh(inputs.alt_model).generate(inputs.prompt, inputs.generate_tokens)
    ctx.same_tokens(replaced, direct, "after a successful replace_model, output must be the new model's")
    return [f"greedy tokens kept across 3 failed replaces: {before['token_ids']}"]


def reset_equals_fresh(ctx: Context) -> list[str]:
    inputs = ctx.inputs
    used = ctx.fresh()
    used.generate("The first request, before the reset", inputs.generate_tokens)
    if used.continues():
        used.ok(Operation.generate_next_token)
    used.ok(Operation.reset)
    if used.continues():
        after_reset = ctx.state_after(State.ContinuationReady, Operation.reset)
        used.error(Operation.generate_next_token, {}, ctx.table_error(after_reset, Operation.generate_next_token),
                   "reset drops the open request, so there is nothing to continue")
    got = used.generate(inputs.prompt, inputs.generate_tokens)
    ctx.same_tokens(got, ctx.fresh_generate(inputs.prompt, inputs.generate_tokens),
                    "after reset, output must equal a fresh runtime's")
    return []


def request_cleanup(ctx: Context) -> list[str]:
    # One runtime at a time: a protocol child serves one, so each is finished before the next opens.
    inputs = ctx.inputs
    session = ctx.fresh()
    session.generate("An earlier request with a longer prompt than the next one", inputs.generate_tokens * 2)
    second = session.generate(inputs.prompt, inputs.generate_tokens)
    seeded = session.generate(inputs.prompt, inputs.generate_tokens, SEEDED)
    fresh = ctx.fresh_generate(inputs.prompt, inputs.generate_tokens)
    ctx.same_tokens(second, fresh, "a new generate must not see the previous request's tokens")
    for key in ("prompt_tokens", "finish_reason", "text"):
        if key in second and key in fresh and second[key] != fresh[key]:
            raise CaseFailed(ctx.rule, f"{key} leaked from the previous request: {second[key]!r} "
                                       f"vs fresh {fresh[key]!r}")
    ctx.same_tokens(seeded, ctx.fresh_generate(inputs.prompt, inputs.generate_tokens, SEEDED),
                    "a seeded request after another must equal the same request on a fresh runtime")
    return []


def context_rejection_leaves_no_partial_state(ctx: Context) -> list[str]:
    inputs = ctx.inputs
    session = ctx.fresh()
    session.generate("A request before the rejected prompt!", inputs.generate_tokens)
    open_request = ctx.state_after(State.Ready, Operation.generate)
    session.error(Operation.generate, generate_args(inputs.long_prompt, inputs.generate_tokens),
                  ctx.table_error(open_request, Operation.generate, prompt_fits=False),
                  "a prompt longer than the context")
    if session.continues():
        rejected = ctx.state_after(open_request, Operation.generate, prompt_fits=False)
        session.error(Operation.generate_next_token, {}, ctx.table_error(rejected, Operation.generate_next_token),
                      "the rejected request left nothing to continue")
    got = session.generate(inputs.prompt, inputs.generate_tokens)
    ctx.same_tokens(got, ctx.fresh_generate(inputs.prompt, inputs.generate_tokens),
                    "the next valid generate must equal a fresh runtime's")
    return []


def generate_after_free(ctx: Context) -> list[str]:
    session = ctx.fresh()
    session.generate(ctx.inputs.prompt, ctx.inputs.generate_tokens)
    session.ok(Operation.free)
    freed = ctx.state_after(ctx.state_after(State.Ready, Operation.generate), Operation.free)
    session.error(Operation.generate, {"prompt": ctx.inputs.prompt, "max_tokens": 2},
                  ctx.table_error(freed, Operation.generate), "after free no model is installed")
    if session.continues():
        session.error(Operation.generate_next_token, {}, ctx.table_error(freed, Operation.generate_next_token),
                      "after free no model is installed")
    return []


def seeded_determinism(ctx: Context) -> list[str]:
    n = SEEDED_TOKENS
    first = ctx.fresh_generate(ctx.inputs.prompt, n, SEEDED)
    second = ctx.fresh_generate(ctx.inputs.prompt, n, SEEDED)
    ctx.same_tokens(second, first, f"the same seed ({SEEDED['seed']}) must give the same tokens")
    # Hot enough that two seeds agree only if the seed is ignored (odds: the fixture self-test).
    one = ctx.fresh_generate(ctx.inputs.prompt, n, PROBE_SAMPLING)
    other = ctx.fresh_generate(ctx.inputs.prompt, n, {**PROBE_SAMPLING, "seed": OTHER_SEED})
    if one["token_ids"] == other["token_ids"]:
        raise CaseFailed(ctx.rule, f"seeds {PROBE_SAMPLING['seed']} and {OTHER_SEED} drew the same {n} tokens "
                                   f"{one['token_ids']}: the seed is not used")
    return []


def request_sampling_is_its_own(ctx: Context) -> list[str]:
    inputs, n = ctx.inputs, SEEDED_TOKENS
    session = ctx.fresh()
    session.ok(Operation.set_sampling, dict(PROBE_SAMPLING))
    session.generate(inputs.prompt, n)                       # the handle's settings
    session.generate(inputs.prompt, n, GREEDY)               # this request's own
    after = session.ok(Operation.generate, {"prompt": inputs.prompt, "max_tokens": n, "stop_at_eos": False})
    reference = ctx.fresh_generate(inputs.prompt, n, PROBE_SAMPLING)
    ctx.same_tokens(after, reference, "after a generate with sampling of its own, the next generate must sample "
                                      "with the handle's settings")
    return []


def continuation(ctx: Context) -> list[str]:
    n, k = ctx.inputs.generate_tokens, CONTINUED_TOKENS
    session = ctx.fresh()
    continued = list(session.generate(ctx.inputs.prompt, n)["token_ids"])
    for _ in range(k):
        continued.append(session.ok(Operation.generate_next_token)["token_id"])
    whole = ctx.fresh_generate(ctx.inputs.prompt, n + k)
    ctx.same_tokens({"token_ids": continued}, whole,
                    f"generate({n}) then {k} generate_next_token must equal generate({n + k})")
    return []


def concurrent_calls_serialized(ctx: Context) -> list[str]:
    prompts = [f"{ctx.inputs.prompt} number {index}" for index in range(CONCURRENT_GENERATES)]
    expected = {prompt: ctx.fresh_generate(prompt, ctx.inputs.long_generation) for prompt in prompts[:2]}
    shared = ctx.fresh()
    replies: dict[str, Reply] = {}
    failures: list[Exception] = []

    def run(prompt: str) -> None:
        try:
            replies[prompt] = shared.call(Operation.generate, generate_args(prompt, ctx.inputs.long_generation))
        except Exception as error:   # noqa: BLE001  e.g. the implementation died: raised again on the case's thread
            failures.append(error)

    threads = [threading.Thread(target=run, args=(prompt,)) for prompt in prompts]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if failures:
        raise failures[0]
    for prompt in prompts:
        if not replies[prompt].ok:
            raise CaseFailed(ctx.rule, f"concurrent generate({prompt!r}) failed: {replies[prompt].describe()}")
    for prompt, alone in expected.items():
        ctx.same_tokens(replies[prompt].value, alone, f"generate({prompt!r}) run beside {len(prompts) - 1} others")
    shared.ok(Operation.free)
    return []


def free_returns_memory(ctx: Context) -> list[str]:
    session = Session(ctx.opener.open(), ctx.rule)
    if session.adapter.memory() is None:
        raise Unsupported(Operation.free, "the implementation's process cannot be measured here")
    session.ok(Operation.init_runtime, ctx.inputs.init_args)
    after_free, footprints, trimmed = [], [], True
    for _ in range(MEMORY_WARMUP_CYCLES + MEMORY_CYCLES):
        session.ok(Operation.load_model, {"path": ctx.inputs.model})
        session.generate(ctx.inputs.prompt, ctx.inputs.generate_tokens)
        loaded = _reading(session)
        session.ok(Operation.free)
        freed = _reading(session)
        footprints.append(loaded.rss - freed.rss)
        after_free.append(freed.rss)
        trimmed = trimmed and loaded.trimmed and freed.trimmed
    judged = after_free[MEMORY_WARMUP_CYCLES:]
    footprint = max(sorted(footprints)[len(footprints) // 2], PAGE_BYTES)
    growth = _typical_step(judged)
    how = "trimmed" if trimmed else "untrimmed (the allocator's free memory included: a small leak may hide in it)"
    note = (f"RSS after each free (KiB, {how}): {[value // 1024 for value in after_free]}; one load's footprint "
            f"{footprint / 1024:.0f} KiB; growth {growth / 1024:.1f} KiB a cycle over the last {MEMORY_CYCLES}")
    limit = max(LEAK_FRACTION * footprint, LEAK_FLOOR_BYTES)
    if growth > limit:
        raise CaseFailed(ctx.rule, f"memory grows by {growth / 1024:.1f} KiB a load/free cycle, "
                                   f"{growth / footprint:.1%} of one load's footprint (limit {limit / 1024:.1f} KiB: "
                                   f"{LEAK_FRACTION:.1%} of it, at least {LEAK_FLOOR_BYTES >> 10} KiB): {note}")
    return [note]


PAGE_BYTES = 4096


def _reading(session: Session) -> MemoryReading:
    reading = session.adapter.memory()
    if reading is None:
        raise Unsupported(Operation.free, "the implementation's process cannot be measured here")
    return reading


def _typical_step(values: list[int]) -> float:
    """The median growth from one cycle to the next.

    A leak grows memory in every cycle; an allocator that takes a new arena, or a
    page of the interpreter's own bookkeeping, grows it in one. A least-squares
    slope over eight cycles counts one step of S as S/5 a cycle of steady leak
    (the reference failed that way on a loaded machine: 27-29 KiB a cycle); the
    median of the per-cycle steps ignores up to half of them.
    """
    return float(statistics.median(after - before for before, after in pairwise(values)))


# ─── two handles in one process ──────────────────────────────────────────────


def handles_are_isolated(ctx: Context) -> list[str]:
    """Whatever one handle is given or does, the other does not see."""
    inputs, n = ctx.inputs, inputs_tokens(ctx)
    solo_model = ctx.fresh_generate(inputs.prompt, n)
    solo_alt = ctx.fresh(inputs.alt_model).generate(inputs.prompt, n)
    solo_seeded = (ctx.fresh_seeded(n, inputs.model), ctx.fresh_seeded(n, inputs.alt_model))
    solo_longer = ctx.fresh_generate(inputs.prompt, n + 1)["token_ids"]
    # Every road alone is taken before the two handles open: opening a fresh runtime drops every handle.
    first = Session(ctx.opener.open(), ctx.rule)
    second = ctx.second_handle()
    first_ctx, second_ctx = inputs.n_ctx, inputs.n_ctx * HANDLE_CONTEXT_FACTOR
    first.ok(Operation.init_runtime, {**inputs.init_args, "n_ctx": first_ctx})
    second.ok(Operation.init_runtime, {**inputs.init_args, "n_ctx": second_ctx})
    # Model: each its own file.
    first.ok(Operation.load_model, {"path": inputs.model})
    second.ok(Operation.load_model, {"path": inputs.alt_model})
    ctx.same_tokens(first.generate(inputs.prompt, n), solo_model, "the first handle runs its own model")
    ctx.same_tokens(second.generate(inputs.prompt, n), solo_alt, "the second handle runs its own model")
    # Configuration: each fills its own context.
    for session, n_ctx, name in ((first, first_ctx, "first"), (second, second_ctx, "second")):
        filled = session.generate(inputs.prompt, inputs.fill_tokens)
        used = filled.get("prompt_tokens", 0) + len(filled["token_ids"])
        if filled.get("finish_reason") != FinishReason.context or ("prompt_tokens" in filled and used != n_ctx):
            raise CaseFailed(ctx.rule, f"the {name} handle was configured with n_ctx={n_ctx}, yet its generate "
                                       f"ended {filled.get('finish_reason')!r} after {used} positions")
    # KV state: a request on one handle does not disturb the other's open request.
    first.generate(inputs.prompt, n)
    second.generate(f"{inputs.prompt} and more", n)
    continued = first.ok(Operation.generate_next_token)["token_id"]
    if continued != solo_longer[n]:
        raise CaseFailed(ctx.rule, f"after the second handle generated, the first continued with {continued}, "
                                   f"not its own next token {solo_longer[n]}")
    # Sampling: the second keeps greedy while the first is set hot.
    second.ok(Operation.set_sampling, dict(GREEDY))
    first.ok(Operation.set_sampling, dict(PROBE_SAMPLING))
    plain = second.ok(Operation.generate, {"prompt": inputs.prompt, "max_tokens": n, "stop_at_eos": False})
    ctx.same_tokens(plain, solo_alt, "the first handle's set_sampling changed the second's sampling")
    # Random draws: both seeded alike, drawing token by token in turn, each equals its run alone.
    _alternate_seeded(ctx, first, second, n, solo_seeded)
    # last_error: the first fails; the second records nothing and keeps its state.
    state_before = second.adapter.current_state()
    first.error(Operation.load_model, {"path": inputs.missing_model},
                ctx.table_error(State.ContinuationReady, Operation.load_model), "a load in a busy handle")
    if Operation.last_error in second.adapter.capabilities.operations:
        recorded = second.call(Operation.last_error).value
        if recorded is not None:
            raise CaseFailed(ctx.rule, f"the first handle's error reached the second's last_error: {recorded!r}")
    if second.adapter.current_state() != state_before:
        raise CaseFailed(ctx.rule, f"the first handle's error moved the second from {state_before} to "
                                   f"{second.adapter.current_state()}")
    # Freeing one leaves the other's model.
    second.ok(Operation.free)
    ctx.same_tokens(first.generate(inputs.prompt, n, GREEDY), solo_model, "after the second handle freed its model")
    first.ok(Operation.free)
    return []


def inputs_tokens(ctx: Context) -> int:
    return max(ctx.inputs.generate_tokens, 8)


def _alternate_seeded(ctx: Context, first: Session, second: Session, n: int,
                      solo: tuple[list[int], list[int]]) -> None:
    for session in (first, second):
        session.ok(Operation.set_sampling, dict(PROBE_SAMPLING))
    drawn: dict[str, list[int]] = {"first": [], "second": []}
    args = {"prompt": ctx.inputs.prompt, "max_tokens": 1, "stop_at_eos": False}
    for name, session in (("first", first), ("second", second)):
        drawn[name] += session.ok(Operation.generate, args)["token_ids"]
    for _ in range(n - 1):
        for name, session in (("first", first), ("second", second)):
            drawn[name].append(session.ok(Operation.generate_next_token)["token_id"])
    for (name, tokens), alone in zip(drawn.items(), solo, strict=True):
        if tokens != alone:
            raise CaseFailed(ctx.rule, f"drawing in turn with the same seed, the {name} handle drew {tokens}; "
                                       f"alone it draws {alone}: the handles share a random generator")


def handles_run_in_parallel(ctx: Context) -> list[str]:
    from ggufsm.conformance.plan.recipes import Action
    from ggufsm.conformance.run.overlap import ANSWER_LIMIT_S, Call, held, in_process

    inputs = ctx.inputs
    first = Session(ctx.opener.open(), ctx.rule)
    if not first.adapter.capabilities.pause and not in_process(first.adapter):
        raise Unsupported(Operation.generate, "showing that two handles run at once needs the pause capability")
    second = ctx.second_handle()
    for session in (first, second):
        session.ok(Operation.init_runtime, inputs.init_args)
        session.ok(Operation.load_model, {"path": inputs.model})
    running = Action(Operation.generate, generate_args(inputs.prompt, inputs.long_generation))
    call, gate, _ = held(first.adapter, running, Trigger.first_token, State.Generating, ctx.rule)
    try:
        if gate is None or not gate.paused.is_set():
            raise CaseFailed(ctx.rule, "the first handle's generate did not pause")
        other = Call(second.adapter, Action(Operation.generate, generate_args(inputs.prompt, inputs.generate_tokens)))
        if not other.done.wait(ANSWER_LIMIT_S):
            raise CaseFailed(ctx.rule, f"the second handle's generate did not finish within {ANSWER_LIMIT_S:.0f} s "
                                       "while the first handle's generate was held: the handles serialize each other")
        reply = other.result(0, "the second handle's generate", ctx.rule)
        if not reply.ok:
            raise CaseFailed(ctx.rule, f"the second handle's generate failed: {reply.describe()}")
    finally:
        if gate is not None:
            gate.resume()
    first_reply = call.result(60.0, "the first handle's generate", ctx.rule)
    if not first_reply.ok:
        raise CaseFailed(ctx.rule, f"the first handle's generate failed: {first_reply.describe()}")
    return ["the second handle generated while the first handle's generate was held"]


CHECKS: Mapping[str, Callable[[Context], list[str]]] = {
    "failed_replace_keeps_output": failed_replace_keeps_output,
    "reset_equals_fresh": reset_equals_fresh,
    "request_cleanup": request_cleanup,
    "context_rejection_leaves_no_partial_state": context_rejection_leaves_no_partial_state,
    "generate_after_free": generate_after_free,
    "seeded_determinism": seeded_determinism,
    "request_sampling_is_its_own": request_sampling_is_its_own,
    "continuation": continuation,
    "concurrent_calls_serialized": concurrent_calls_serialized,
    "free_returns_memory": free_returns_memory,
    "handles_are_isolated": handles_are_isolated,
    "handles_run_in_parallel": handles_run_in_parallel,
}


def behaviour_cases(spec: Spec, inputs: SuiteInputs) -> list[Case]:
    """One case per behavioural rule; each opens its own runtimes."""

    def runner_for(rule: BehaviourRule) -> Callable[[Adapter], list[str]]:
        check = CHECKS[rule.name]

        def run(opener: Adapter) -> list[str]:
            assert isinstance(opener, Opener), "behaviour cases open their own runtimes"
            missing = [op for op in rule.needs if op not in opener.info.capabilities.operations]
            if missing:
                raise Unsupported(missing[0], f"{rule.id} needs {', '.join(missing)}")
            return check(Context(opener, spec, inputs, rule.id))
        return run

    return [Case(rule.id, BEHAVIOUR, rule.id, [rule.statement], runner_for(rule), fresh_adapter=False)
            for rule in BEHAVIOUR_RULES]
