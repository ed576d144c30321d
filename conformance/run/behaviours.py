"""The behavioural rules' checks (the rules themselves, as data: ``plan.behaviours``).

Each check opens fresh runtimes, one after another, and compares what they
produce: greedy tokens are deterministic, so two roads to the same point
must give the same output. Where a rule expects an error, the error comes
from the table.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from ggufsm.conformance.adapter import Adapter, Reply, TokenCallback
from ggufsm.conformance.plan.behaviours import (
    BEHAVIOUR_RULES,
    CONCURRENT_GENERATES,
    CONTINUED_TOKENS,
    MEMORY_CYCLES,
    SEEDED,
    BehaviourRule,
)
from ggufsm.conformance.plan.expected import natural_outcome
from ggufsm.conformance.plan.recipes import GREEDY, SuiteInputs
from ggufsm.conformance.run.case import BEHAVIOUR, Case, Opener
from ggufsm.conformance.run.checks import CaseFailed, Unsupported
from ggufsm.spec import Spec
from ggufsm.spec.names import ErrorCode, Operation, State

MEMORY_FLOOR_BYTES = 4 << 20


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
    session.generate("A request before the rejected one", inputs.generate_tokens)
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
    first = ctx.fresh_generate(ctx.inputs.prompt, ctx.inputs.generate_tokens * 2, SEEDED)
    second = ctx.fresh_generate(ctx.inputs.prompt, ctx.inputs.generate_tokens * 2, SEEDED)
    ctx.same_tokens(second, first, f"the same seed ({SEEDED['seed']}) must give the same tokens")
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
        except Exception as error:   # e.g. the implementation died: raised again on the case's thread
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
    pid = session.adapter.info.pid
    if pid is None or not Path(f"/proc/{pid}/status").exists():
        raise Unsupported(Operation.free, "the implementation's process cannot be measured here")
    session.ok(Operation.init_runtime, ctx.inputs.init_args)
    after_free, loaded = [], []
    for _ in range(MEMORY_CYCLES):
        session.ok(Operation.load_model, {"path": ctx.inputs.model})
        session.generate(ctx.inputs.prompt, ctx.inputs.generate_tokens)
        loaded.append(_rss(pid))
        session.ok(Operation.free)
        after_free.append(_rss(pid))
    footprint = max(loaded[0] - after_free[0], 0)
    # Judged over the second half of the cycles: allocators keep arenas from the first loads (seen with
    # llama.cpp on the tiny model: RSS climbs for ~10 cycles, then stays flat), a leak grows every cycle.
    settled = MEMORY_CYCLES // 2
    growth = after_free[-1] - after_free[settled - 1]
    limit = max(MEMORY_FLOOR_BYTES, int(1.5 * footprint))
    note = (f"RSS after each free (MiB): {[round(value / 2**20, 1) for value in after_free]}; "
            f"one load's footprint {footprint / 2**20:.1f} MiB")
    if growth > limit:
        raise CaseFailed(ctx.rule, f"RSS grew by {growth / 2**20:.1f} MiB over the last {MEMORY_CYCLES - settled} "
                                   f"load/free cycles (limit {limit / 2**20:.1f} MiB): {note}")
    return [note]


def _rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise Unsupported(Operation.free, f"no VmRSS for process {pid}")


CHECKS: Mapping[str, Callable[[Context], list[str]]] = {
    "failed_replace_keeps_output": failed_replace_keeps_output,
    "reset_equals_fresh": reset_equals_fresh,
    "request_cleanup": request_cleanup,
    "context_rejection_leaves_no_partial_state": context_rejection_leaves_no_partial_state,
    "generate_after_free": generate_after_free,
    "seeded_determinism": seeded_determinism,
    "continuation": continuation,
    "concurrent_calls_serialized": concurrent_calls_serialized,
    "free_returns_memory": free_returns_memory,
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
