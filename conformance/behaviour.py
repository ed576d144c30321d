"""Behavioural cases: rules about what a runtime produces, judged without asking it for its state.

They compare outputs (greedy tokens are deterministic) between runtimes that
took different roads to the same point, so they also judge implementations
that report no state and no diagnostics. Where a rule expects an error, the
error comes from the table, not from this file.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Callable

from ggufsm.conformance.adapter import Adapter, Reply
from ggufsm.conformance.checks import CaseFailed, Unsupported
from ggufsm.conformance.recipes import GREEDY, SuiteInputs, with_natural_values

SEEDED = {"temperature": 0.9, "top_k": 40, "top_p": 0.95, "min_p": 0.0, "seed": 1234}
MEMORY_CYCLES = 8
MEMORY_FLOOR_BYTES = 4 << 20


class Session:
    """Calls on one runtime that must succeed (a failure names the rule and the call)."""

    def __init__(self, adapter: Adapter, rule: str):
        self.adapter, self.rule = adapter, rule

    def call(self, op: str, args: dict | None = None, on_token=None) -> Reply:
        reply = self.adapter.call(op, dict(args or {}), on_token=on_token)
        if reply.not_supported:
            raise Unsupported(op)
        return reply

    def ok(self, op: str, args: dict | None = None) -> object:
        reply = self.call(op, args)
        if not reply.ok:
            raise CaseFailed(self.rule, f"{op}({_brief(args)}) should succeed here, got {reply.describe()}")
        return reply.value

    def error(self, op: str, args: dict | None, expected: str, why: str) -> None:
        reply = self.call(op, args)
        if reply.code != expected:
            raise CaseFailed(self.rule, f"{why}: {op}({_brief(args)}) should fail with {expected}, got {reply.describe()}")

    def generate(self, prompt: str, max_tokens: int, sampling=GREEDY) -> dict:
        return self.ok("generate", {"prompt": prompt, "max_tokens": max_tokens, "stop_at_eos": False,
                                    "sampling": dict(sampling)})


def _brief(args) -> str:
    return ", ".join(f"{key}={value!r}"[:60] for key, value in (args or {}).items())


class Behaviour:
    """A named rule, the operations it needs, and its check."""

    def __init__(self, name: str, needs: tuple[str, ...], statement: str, check: Callable):
        self.name, self.needs, self.statement, self.check = name, needs, statement, check

    @property
    def rule(self) -> str:
        return f"behaviour.{self.name}"


class _Context:
    """What a behaviour check works with. Runtimes are used one after another, never interleaved:
    a protocol child serves one runtime at a time (opening the next drops the previous)."""

    def __init__(self, opener, spec, inputs: SuiteInputs, rule: str):
        self.opener, self.spec, self.inputs, self.rule = opener, spec, inputs, rule

    def fresh(self, model: str | None = None, n_ctx: int | None = None) -> Session:
        """A new runtime, configured and with a model installed."""
        session = Session(self.opener.open(), self.rule)
        session.ok("init_runtime", {**self.inputs.init_args, **({"n_ctx": n_ctx} if n_ctx else {})})
        session.ok("load_model", {"path": model or self.inputs.model})
        return session

    def table_error(self, state: str, op: str, **guards) -> str | None:
        """The error the table gives `op` in `state` (natural guard values unless given)."""
        values = with_natural_values(self.spec.guards_for(state, op), guards)
        return self.spec.outcome(state, op, values).error

    def state_after(self, state: str, op: str, **guards) -> str:
        values = with_natural_values(self.spec.guards_for(state, op), guards)
        return self.spec.outcome(state, op, values).to

    def same_tokens(self, got: dict, expected: dict, what: str) -> None:
        if got["token_ids"] != expected["token_ids"]:
            raise CaseFailed(self.rule, f"{what}: tokens {got['token_ids']} differ from {expected['token_ids']}")


def failed_replace_keeps_output(ctx: _Context) -> list[str]:
    session = ctx.fresh()
    before = session.generate(ctx.inputs.prompt, ctx.inputs.generate_tokens)
    for path in (ctx.inputs.corrupt_model, ctx.inputs.missing_model, ctx.inputs.unsupported_model):
        reply = session.call("replace_model", {"path": path})
        if reply.ok:
            raise CaseFailed(ctx.rule, f"replace_model({path}) succeeded with a model that cannot be installed")
        after = session.generate(ctx.inputs.prompt, ctx.inputs.generate_tokens)
        ctx.same_tokens(after, before, f"after the failed replace_model({Path(path).name}) ({reply.code})")
    session.ok("replace_model", {"path": ctx.inputs.alt_model})
    replaced = session.generate(ctx.inputs.prompt, ctx.inputs.generate_tokens)
    direct = ctx.fresh(ctx.inputs.alt_model).generate(ctx.inputs.prompt, ctx.inputs.generate_tokens)
    ctx.same_tokens(replaced, direct, "after a successful replace_model, output must be the new model's")
    return [f"greedy tokens kept across 3 failed replaces: {before['token_ids']}"]


def reset_equals_fresh(ctx: _Context) -> list[str]:
    used = ctx.fresh()
    used.generate("The first request, before the reset", ctx.inputs.generate_tokens)
    continuing = "generate_next_token" in used.adapter.capabilities.operations
    if continuing:
        used.ok("generate_next_token")
    used.ok("reset")
    if continuing:
        after_reset = ctx.state_after("ContinuationReady", "reset")
        expected = ctx.table_error(after_reset, "generate_next_token")
        used.error("generate_next_token", {}, expected, "reset drops the open request, so there is nothing to continue")
    got = used.generate(ctx.inputs.prompt, ctx.inputs.generate_tokens)
    ctx.same_tokens(got, ctx.fresh().generate(ctx.inputs.prompt, ctx.inputs.generate_tokens),
                    "after reset, output must equal a fresh runtime's")
    return []


def request_cleanup(ctx: _Context) -> list[str]:
    # One runtime at a time: a protocol child serves one, so each is finished before the next opens.
    session = ctx.fresh()
    session.generate("An earlier request with a longer prompt than the next one", ctx.inputs.generate_tokens * 2)
    second = session.generate(ctx.inputs.prompt, ctx.inputs.generate_tokens)
    seeded = session.generate(ctx.inputs.prompt, ctx.inputs.generate_tokens, SEEDED)
    fresh = ctx.fresh().generate(ctx.inputs.prompt, ctx.inputs.generate_tokens)
    ctx.same_tokens(second, fresh, "a new generate must not see the previous request's tokens")
    for key in ("prompt_tokens", "finish_reason", "text"):
        if key in second and key in fresh and second[key] != fresh[key]:
            raise CaseFailed(ctx.rule, f"{key} leaked from the previous request: {second[key]!r} vs fresh {fresh[key]!r}")
    ctx.same_tokens(seeded, ctx.fresh().generate(ctx.inputs.prompt, ctx.inputs.generate_tokens, SEEDED),
                    "a seeded request after another must equal the same request on a fresh runtime")
    return []


def context_rejection_leaves_no_partial_state(ctx: _Context) -> list[str]:
    session = ctx.fresh()
    session.generate("A request before the rejected one", ctx.inputs.generate_tokens)
    expected = ctx.table_error("ContinuationReady", "generate", prompt_fits=False)
    session.error("generate", {"prompt": ctx.inputs.long_prompt, "max_tokens": 4, "stop_at_eos": False,
                               "sampling": dict(GREEDY)}, expected, "a prompt longer than the context")
    if "generate_next_token" in session.adapter.capabilities.operations:
        rejected_state = ctx.state_after("ContinuationReady", "generate", prompt_fits=False)
        session.error("generate_next_token", {}, ctx.table_error(rejected_state, "generate_next_token"),
                      "the rejected request left nothing to continue")
    got = session.generate(ctx.inputs.prompt, ctx.inputs.generate_tokens)
    ctx.same_tokens(got, ctx.fresh().generate(ctx.inputs.prompt, ctx.inputs.generate_tokens),
                    "the next valid generate must equal a fresh runtime's")
    return []


def generate_after_free(ctx: _Context) -> list[str]:
    session = ctx.fresh()
    session.generate(ctx.inputs.prompt, ctx.inputs.generate_tokens)
    session.ok("free")
    session.error("generate", {"prompt": ctx.inputs.prompt, "max_tokens": 2}, ctx.table_error("Freed", "generate"),
                  "after free no model is installed")
    if "generate_next_token" in session.adapter.capabilities.operations:
        session.error("generate_next_token", {}, ctx.table_error("Freed", "generate_next_token"),
                      "after free no model is installed")
    return []


def seeded_determinism(ctx: _Context) -> list[str]:
    first = ctx.fresh().generate(ctx.inputs.prompt, ctx.inputs.generate_tokens * 2, SEEDED)
    second = ctx.fresh().generate(ctx.inputs.prompt, ctx.inputs.generate_tokens * 2, SEEDED)
    ctx.same_tokens(second, first, f"the same seed ({SEEDED['seed']}) must give the same tokens")
    return []


def continuation(ctx: _Context) -> list[str]:
    n, k = ctx.inputs.generate_tokens, 3
    session = ctx.fresh()
    start = session.generate(ctx.inputs.prompt, n)
    continued = list(start["token_ids"])
    for _ in range(k):
        continued.append(session.ok("generate_next_token")["token_id"])
    whole = ctx.fresh().generate(ctx.inputs.prompt, n + k)
    ctx.same_tokens({"token_ids": continued}, whole,
                    f"generate({n}) then {k} generate_next_token must equal generate({n + k})")
    return []


def concurrent_calls_serialized(ctx: _Context) -> list[str]:
    prompts = [f"{ctx.inputs.prompt} number {index}" for index in range(4)]
    expected = {prompt: ctx.fresh().generate(prompt, ctx.inputs.long_generation) for prompt in prompts[:2]}
    shared = ctx.fresh()
    replies: dict[str, Reply] = {}

    failures: list[Exception] = []

    def run(prompt: str) -> None:
        try:
            replies[prompt] = shared.call("generate", {"prompt": prompt, "max_tokens": ctx.inputs.long_generation,
                                                       "stop_at_eos": False, "sampling": dict(GREEDY)})
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
        ctx.same_tokens(replies[prompt].value, alone, f"generate({prompt!r}) run beside three others")
    shared.ok("free")
    return []


def free_returns_memory(ctx: _Context) -> list[str]:
    session = Session(ctx.opener.open(), ctx.rule)
    pid = getattr(session.adapter, "pid", None) or session.adapter.info.pid
    if pid is None or not Path(f"/proc/{pid}/status").exists():
        raise Unsupported("free", "the implementation's process cannot be measured here")
    session.ok("init_runtime", ctx.inputs.init_args)
    after_free, loaded = [], []
    for _ in range(MEMORY_CYCLES):
        session.ok("load_model", {"path": ctx.inputs.model})
        session.generate(ctx.inputs.prompt, ctx.inputs.generate_tokens)
        loaded.append(_rss(pid))
        session.ok("free")
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
    raise Unsupported("free", f"no VmRSS for process {pid}")


BEHAVIOURS = (
    Behaviour("failed_replace_keeps_output", ("init_runtime", "load_model", "generate", "replace_model"),
              "a failed replace_model leaves the previous model installed: greedy output is identical; "
              "a successful one gives the new model's output", failed_replace_keeps_output),
    Behaviour("reset_equals_fresh", ("init_runtime", "load_model", "generate", "reset"),
              "after reset, nothing can be continued and output equals a fresh runtime's", reset_equals_fresh),
    Behaviour("request_cleanup", ("init_runtime", "load_model", "generate"),
              "each generate clears the previous request: tokens, text and counters equal a fresh runtime's",
              request_cleanup),
    Behaviour("context_rejection_leaves_no_partial_state", ("init_runtime", "load_model", "generate"),
              "a prompt that does not fit is rejected with the table's error and leaves nothing behind",
              context_rejection_leaves_no_partial_state),
    Behaviour("generate_after_free", ("init_runtime", "load_model", "generate", "free"),
              "after free, generation fails with the table's error (ModelNotLoaded)", generate_after_free),
    Behaviour("seeded_determinism", ("init_runtime", "load_model", "generate"),
              "the same seed and settings give the same tokens", seeded_determinism),
    Behaviour("continuation", ("init_runtime", "load_model", "generate", "generate_next_token"),
              "generate(n) then k generate_next_token equals generate(n+k) (greedy)", continuation),
    Behaviour("concurrent_calls_serialized", ("init_runtime", "load_model", "generate", "free"),
              "generates from several threads on one handle do not crash and each equals its run alone",
              concurrent_calls_serialized),
    Behaviour("free_returns_memory", ("init_runtime", "load_model", "generate", "free"),
              f"the process's memory stays flat over {MEMORY_CYCLES} load/generate/free cycles", free_returns_memory),
)


def behaviour_cases(spec, inputs: SuiteInputs) -> list:
    from ggufsm.conformance.runner import Case

    def runner_for(behaviour: Behaviour):
        def run(opener) -> list[str]:
            missing = [op for op in behaviour.needs if op not in opener.info.capabilities.operations]
            if missing:
                raise Unsupported(missing[0], f"{behaviour.rule} needs {', '.join(missing)}")
            return behaviour.check(_Context(opener, spec, inputs, behaviour.rule))
        return run

    return [Case(behaviour.rule, "behaviour", behaviour.rule, [behaviour.statement], runner_for(behaviour),
                 fresh_adapter=False) for behaviour in BEHAVIOURS]
