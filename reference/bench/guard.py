"""`ggufsm bench guard -m MODEL`: what the lifecycle machine costs per generate_next_token, beside a decode step.

One handle holds the model with a request open. Each round times, side by side:

- the machine's path alone: N generate_next_token commands whose work is
  replaced by nothing, so a call is the lock, the command object, the two
  triggers (into Generating on context_left, and out of it), the guard and
  the callbacks, and no token (also as the thread's CPU time, which a busy
  machine inflates less than the wall clock);
- the bare action: the same do-nothing work called directly, N times;
- decode steps: real generate_next_token calls (sampling and the forward pass).

The machine's cost is the first minus the second; the share is that over one
decode step of the same round. Rounds interleave the three, so a busy moment
of the machine lands in all of them; the table reports the best and the
median round.
"""

from __future__ import annotations

import statistics
import time

from ggufsm.reference.cli.options import add_model_option
from ggufsm.reference.runtime.commands import GenerateNextToken
from ggufsm.reference.runtime.resident import Resident
from ggufsm.spec.names import Operation


class _NothingToDo(GenerateNextToken):
    """generate_next_token with its work replaced by nothing: the machine's path alone."""

    def run(self, resident: Resident) -> None:
        pass


def register_bench(bench_commands) -> None:
    parser = bench_commands.add_parser("guard", help="the lifecycle machine's cost per generate_next_token vs a decode step")
    add_model_option(parser)
    parser.add_argument("-t", "--threads", type=int, default=2, help="threads each runtime uses")
    parser.add_argument("--calls", type=int, default=5000, help="machine calls per round (default 5000)")
    parser.add_argument("--tokens", type=int, default=32, help="decode steps per round (default 32)")
    parser.add_argument("--rounds", type=int, default=7, help="rounds measured; the median and the best are reported")
    parser.set_defaults(handler=run)


def run(args) -> int:
    from ggufsm.reference.model.registry import resolve
    from ggufsm.reference.runtime import Runtime

    runtime = Runtime()
    runtime.init_runtime(n_ctx=args.rounds * args.tokens + 64, n_threads=args.threads)
    runtime.load_model(resolve(args.model, pull=True))
    runtime.generate("The quick brown fox", 1, temperature=0.0, stop_at_eos=False)
    rounds = [_round(runtime, args.calls, args.tokens) for _ in range(args.rounds)]
    record_rounds(args.record, rounds, resolve(args.model))
    print(render(rounds, args))
    runtime.free()
    return 0


def _round(runtime, calls: int, tokens: int) -> dict[str, float]:
    lifecycle = runtime._lifecycle
    resident = lifecycle.resident
    started, started_cpu = time.perf_counter(), time.thread_time()
    for _ in range(calls):
        lifecycle.perform(Operation.generate_next_token, _NothingToDo())
    machine = (time.perf_counter() - started) / calls
    machine_cpu = (time.thread_time() - started_cpu) / calls
    started = time.perf_counter()
    for _ in range(calls):
        _NothingToDo().run(resident)
    bare = (time.perf_counter() - started) / calls
    started = time.perf_counter()
    for _ in range(tokens):
        runtime.generate_next_token()
    decode = (time.perf_counter() - started) / tokens
    return {"machine_us": machine * 1e6, "bare_us": bare * 1e6, "overhead_us": (machine - bare) * 1e6,
            "machine_cpu_us": machine_cpu * 1e6, "decode_us": decode * 1e6, "share_pct": (machine - bare) / decode * 100}


def record_rounds(record, rounds: list[dict[str, float]], model) -> None:
    """Every round's figures, as series of the record (the machine's share: the CPU cost of the lifecycle)."""
    record.model(model)
    for round_ in rounds:
        for key, value in round_.items():
            record.sample(key, value, "%" if key.endswith("_pct") else "us", better="lower")


def render(rounds: list[dict[str, float]], args) -> str:
    best = min(rounds, key=lambda round_: round_["share_pct"])
    median = {key: statistics.median(round_[key] for round_ in rounds) for key in rounds[0]}
    lines = [
        f"`ggufsm bench guard -m {args.model} -t {args.threads} --calls {args.calls} --tokens {args.tokens} "
        f"--rounds {args.rounds}`",
        "",
        "| round | through the machine (µs) | its CPU time (µs) | bare action (µs) | machine's cost (µs) "
        "| decode step (µs) | share of a step |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name, row in (("best", best), ("median", median)):
        lines.append(f"| {name} | {row['machine_us']:.1f} | {row['machine_cpu_us']:.1f} | {row['bare_us']:.2f} | "
                     f"{row['overhead_us']:.1f} | {row['decode_us']:.0f} | {row['share_pct']:.2f}% |")
    return "\n".join(lines)
