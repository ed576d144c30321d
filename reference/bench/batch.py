"""`ggufsm bench batch`: several Runtime handles generating at once on one model, batched or one by one.

    ggufsm bench batch -m smollm2 [--handles 1,2,4,8] [-t 2] [--repeat 3] [--tokens 32] [--peer]

For each count k, k Runtime handles on the same file (one shared forward:
reference/architectures/shared_forward.py) each take a 16-token prompt
(`generate(prompt, 0)`), then, started together on a barrier, each calls
`generate_next_token()` --tokens times on its own thread (greedy sampling), the
way k users of the library would. Timed two ways in the same round:
  * `batched`: batch_decode on (the default): the handles' decode steps meet in
    the model's DecodeScheduler and run as one pass (reference/runtime/batching.py);
  * `one by one`: batch_decode off: each step is its own pass (what k handles
    cost when nothing batches them).
Aggregate tok/s is k x steps over the wall time from the barrier to the last
handle's last token; a handle's per-token latency is the median time of its
generate_next_token calls, compared with one handle alone (k = 1, batched).
With --peer, llama.cpp's own `llama-batched-bench -npp 16 -ntg TOKENS -npl
HANDLES` on the same file runs in each round too (S_TG: its aggregate decode
tok/s over the parallel sequences). Rounds interleave every contender, and each
figure is the median of the rounds with their range beside it (a machine shared
with other jobs moves them all); `batched / one by one` pairs the two ways of
the same round, the figure least moved by the neighbours' load.

With --settled-ab, instead of the rounds: batched runs of each count in one process, alternating round by
round between the greedy token settled by the pass that wrote the logits (the default: each handle's
sampling reads one integer) and read again from the row by each handle (`_core.set_settled_greedy(False)`),
the two ways' order swapped every round; each count's figure is the median of the rounds' paired ratios.
With --shape-ab NAME=VALUE,... the same, between the default step and the step with those
`kernels.set_step_shape` arguments (e.g. `layer_walk=false`: one session's step dispatched op by op rather
than walked by the team); both print each count's per-token latency over one handle's of the same way.

With --split, one more batched run per count after the rounds says where a step's wall time goes: the passes
(the C++ forward, split op by op by the pass's profile into the weights' matmuls, each session's attention
and KV store, and the other ops), the leaders' gathering (waiting for the last pass's sessions to queue
again) and the rest (each handle's own work between its steps: sampling, the text, the lifecycle, which the
GIL serializes, and the threads' wake-ups).
"""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time
from pathlib import Path

import numpy as np

PROMPT = 16
LLAMA_BATCHED_BENCH = Path("/work/peer/llama-build/bin/llama-batched-bench")
WAYS = ("batched", "one by one")


def register_bench(bench_commands) -> None:
    parser = bench_commands.add_parser(
        "batch", help="aggregate decode of several Runtime handles batched as one pass, beside llama-batched-bench")
    parser.add_argument("-m", "--model", default="smollm2", help="registry name or GGUF path (default smollm2)")
    parser.add_argument("--handles", default="1,2,4,8", help="comma-separated handle counts (default %(default)s)")
    parser.add_argument("-t", "--threads", type=int, default=2, help="threads of the forward's pool")
    parser.add_argument("--repeat", type=int, default=3, help="rounds (default 3)")
    parser.add_argument("--tokens", type=int, default=32, help="decode steps per handle per run (default 32)")
    parser.add_argument("--peer", action="store_true", help=f"also run {LLAMA_BATCHED_BENCH} in each round")
    parser.add_argument("--split", action="store_true",
                        help="then one batched run per count, profiled: a step's time split into the pass's ops, "
                             "the scheduler's gathering and the handles' own work between steps")
    parser.add_argument("--settled-ab", action="store_true",
                        help="instead of the rounds: batched runs alternating in one process between the greedy token "
                             "settled by the pass and read again by each handle (_core.set_settled_greedy)")
    parser.add_argument("--shape-ab", default=None, metavar="NAME=VALUE,...",
                        help="instead of the rounds: batched runs alternating in one process between the default step and "
                             "the step with these kernels.set_step_shape arguments (e.g. layer_walk=false)")
    parser.add_argument("--peer-timeout", type=float, default=1800.0,
                        help="seconds one llama-batched-bench run may take; past it the round has no peer figures "
                             "(its spin-waiting threads can crawl on a loaded machine) (default %(default)s)")
    parser.set_defaults(handler=run)


def run(args) -> int:
    from ggufsm.reference.bench.record import OBSERVED
    from ggufsm.reference.model.registry import resolve
    from ggufsm.reference.runtime import Runtime

    record = args.record
    path = resolve(args.model, pull=True)
    record.model(path)
    counts = [int(k) for k in args.handles.split(",")]
    anchor = Runtime()  # holds the shared forward between runs, so no run pays a load
    anchor.init_runtime(n_ctx=PROMPT + args.tokens + 8, n_threads=args.threads)
    anchor.load_model(path)
    # The work the load leaves for after the first pass (the output's repack, the layers' collapse onto 2 MiB
    # pages) finishes the load: done here, so no round's first steps share the cores with it.
    anchor._lifecycle.resident.session.model._core.finish_load()
    n_vocab = anchor._model.tokenizer.vocab_size
    rng = np.random.default_rng(0)
    prompts = rng.integers(3, n_vocab, size=(max(counts), PROMPT)).tolist()
    load_before = os.getloadavg()[0]
    figures: dict[tuple[str, int], list[float]] = {}  # (way, k) -> aggregate tok/s per round
    latency: dict[tuple[str, int], list[float]] = {}  # (way, k) -> a handle's median seconds per token, per round
    peer = LLAMA_BATCHED_BENCH.exists() and args.peer
    if peer:
        record.peer_binary(LLAMA_BATCHED_BENCH)
    scheduler = anchor._lifecycle.resident.session.scheduler
    ways = ab_ways(args)
    if ways:
        try:
            print(ways_ab(path, args, counts, prompts, record, ways))
        finally:
            anchor.free()
        return 0
    for _ in range(args.repeat):
        for k in counts:
            for way in WAYS:
                aggregate, per_token = handles_at_once(path, args, prompts[:k], way == "batched")
                figures.setdefault((way, k), []).append(aggregate)
                latency.setdefault((way, k), []).append(per_token)
                record.sample(f"{way} x{k}: aggregate", aggregate, "tok/s", handles=k)
                record.sample(f"{way} x{k}: per-token latency", per_token, "s", better="lower", handles=k)
        if peer:
            finished = llama_batched_bench(path, args.threads, args.tokens, counts, args.peer_timeout)
            for k in counts:  # nan where the run did not finish, so that rounds stay paired by index
                figures.setdefault(("llama.cpp", k), []).append(finished.get(k, float("nan")))
                if k in finished:
                    record.sample(f"llama-batched-bench x{k}: S_TG", finished[k], "tok/s", runner="llama.cpp", handles=k)
    splits = {k: step_split(path, args, prompts[:k], scheduler) for k in counts} if args.split and scheduler else {}
    anchor.free()
    for k, split in splits.items():
        for part, ms in split.items():
            record.sample(f"batched x{k} step: {part}", ms, "ms", better="lower", handles=k)
    for k in counts:
        if 1 in counts and k != 1:
            record.compare(f"batched x{k} / batched x1: aggregate", f"batched x{k}: aggregate", "batched x1: aggregate")
            record.compare(f"batched x{k} / batched x1: per-token latency", f"batched x{k}: per-token latency",
                           "batched x1: per-token latency")
        record.compare(f"batched / one by one x{k}: aggregate", f"batched x{k}: aggregate", f"one by one x{k}: aggregate")
        if peer and not np.isnan(figures[("llama.cpp", k)]).any():  # the record pairs samples by index
            record.compare(f"batched / llama-batched-bench x{k}", f"batched x{k}: aggregate", f"llama-batched-bench x{k}: S_TG")
    passes = dict(sorted(scheduler.pass_sizes.items())) if scheduler is not None else {}
    record.fact("batched_pass_sizes", {str(size): n for size, n in passes.items()}, OBSERVED,
                "passes the shared model's DecodeScheduler ran during the batched runs, by their number of steps")
    print(render(path, args, counts, figures, latency, peer, (load_before, os.getloadavg()[0])))
    print(f"\nbatched runs' passes by number of steps: {passes}")
    if splits:
        print("\n" + render_split(splits))
    return 0


def ab_ways(args) -> dict | None:
    """--settled-ab or --shape-ab: way name -> its setting (called before each of its runs), the default's first;
    and "reset" -> what puts every setting back. None for neither."""
    from ggufsm import _core
    from ggufsm._core import kernels

    if getattr(args, "settled_ab", False):
        return {"settled": lambda: _core.set_settled_greedy(True), "read again": lambda: _core.set_settled_greedy(False),
                "reset": lambda: _core.set_settled_greedy(True)}
    if getattr(args, "shape_ab", None):
        from ggufsm.reference.bench.decode import parse_shape

        shape = parse_shape(args.shape_ab)
        return {"default": kernels.set_step_shape, args.shape_ab: lambda: kernels.set_step_shape(**shape),
                "reset": kernels.set_step_shape}
    return None


def ways_ab(path, args, counts: list[int], prompts: list[list[int]], record, ways: dict) -> str:
    """--settled-ab, --shape-ab: batched runs of each count in one process, alternating round by round between two
    ways (their order swapped every round); each count's figure is the median of the rounds' paired ratios."""
    names = [name for name in ways if name != "reset"]
    figures: dict[tuple[str, int], list[float]] = {}
    latency: dict[tuple[str, int], list[float]] = {}
    try:
        for round_index in range(args.repeat):
            for k in counts:
                for way in names if round_index % 2 == 0 else names[::-1]:
                    ways[way]()
                    aggregate, per_token = handles_at_once(path, args, prompts[:k], batched=True)
                    figures.setdefault((way, k), []).append(aggregate)
                    latency.setdefault((way, k), []).append(per_token)
                    record.sample(f"{way} x{k}: aggregate", aggregate, "tok/s", handles=k)
                    record.sample(f"{way} x{k}: per-token latency", per_token, "s", better="lower", handles=k)
    finally:
        ways["reset"]()
    a, b = names
    lines = [f"model {path.name}, {args.threads} threads, batched Runtime handles (greedy generate_next_token), "
             f"{args.repeat} rounds of {args.tokens} steps per handle; load average {os.getloadavg()[0]:.2f} after.", "",
             f"| handles | {a}: aggregate tok/s | {b}: aggregate tok/s | {a} / {b}, same round | {a}: latency / 1 handle's "
             f"| {b}: latency / 1 handle's |", "| ---: | ---: | ---: | ---: | ---: | ---: |"]
    for k in counts:
        record.compare(f"{a} / {b} x{k}: aggregate", f"{a} x{k}: aggregate", f"{b} x{k}: aggregate")
        paired = [x / y for x, y in zip(figures[(a, k)], figures[(b, k)], strict=True)]
        over_one = [f"{np.median(latency[(way, k)]) / np.median(latency[(way, 1)]):.2f}x" if 1 in counts else "" for way in names]
        lines.append(f"| {k} | {np.median(figures[(a, k)]):.1f} | {np.median(figures[(b, k)]):.1f} | "
                     f"{np.median(paired):.3f}x ({min(paired):.3f}-{max(paired):.3f}x) | {over_one[0]} | {over_one[1]} |")
    return "\n".join(lines)


def step_split(path, args, prompts: list[list[int]], scheduler) -> dict[str, float]:
    """One batched run of len(prompts) handles, profiled: ms per step of each part (see the module's --split)."""
    batch = scheduler._batch
    passes_before, gather_before = scheduler.pass_seconds, scheduler.gather_seconds
    batch.set_profiling(True)
    if len(prompts) == 1:  # a handle alone runs its session's own decode, not the batch: profile that session
        sessions: list = []
        original = scheduler._run

        def profiled_run(steps) -> None:
            if not sessions:
                sessions.append(steps[0].session)
                steps[0].session.set_profiling(True)
            original(steps)

        scheduler._run = profiled_run
    try:
        aggregate, _ = handles_at_once(path, args, prompts, batched=True)
    finally:
        batch.set_profiling(False)
        if len(prompts) == 1:
            del scheduler._run
    profile = sessions[0].profile if len(prompts) == 1 else batch.profile
    step_count = args.tokens  # every handle's steps, run together: one step of each per pass
    wall_ms = len(prompts) * args.tokens / aggregate * 1e3 / step_count
    parts = {"weights (matmuls)": 0.0, "attention + kv store": 0.0, "other ops": 0.0}
    for op in profile["ops"]:
        part = ("weights (matmuls)" if op["op"].startswith("matmul")
                else "attention + kv store" if op["op"] in ("attention", "kv store") else "other ops")
        parts[part] += op["seconds"] * 1e3 / step_count
    pass_ms = (scheduler.pass_seconds - passes_before) * 1e3 / step_count
    gather_ms = (scheduler.gather_seconds - gather_before) * 1e3 / step_count
    return {"wall": wall_ms, "pass": pass_ms, **parts, "gather": gather_ms, "between steps": wall_ms - pass_ms - gather_ms}


def render_split(splits: dict[int, dict[str, float]]) -> str:
    parts = list(next(iter(splits.values())))
    lines = ["Where a batched step's wall time goes (ms per step; the pass's ops from its profile):", "",
             "| handles | " + " | ".join(parts) + " |", "| ---: |" + " ---: |" * len(parts)]
    lines += [f"| {k} | " + " | ".join(f"{split[part]:.2f}" for part in parts) + " |" for k, split in splits.items()]
    return "\n".join(lines)


def handles_at_once(path, args, prompts: list[list[int]], batched: bool) -> tuple[float, float]:
    """k handles, each its prompt, then --tokens generate_next_token calls each on its own thread, started
    together. Returns the aggregate tok/s and the median seconds of one handle's token."""
    from ggufsm.reference.runtime import Runtime

    handles = []
    for prompt in prompts:
        runtime = Runtime()
        runtime.init_runtime(n_ctx=PROMPT + args.tokens + 8, n_threads=args.threads, batch_decode=batched)
        runtime.load_model(path)
        runtime.generate(prompt, 0, temperature=0.0, stop_at_eos=False)  # the prompt evaluated, no token yet
        handles.append(runtime)
    start = threading.Barrier(len(handles))
    spans: list[tuple[float, float]] = []
    steps: list[float] = []
    lock = threading.Lock()

    def decode(runtime) -> None:
        start.wait()
        began = last = time.perf_counter()
        mine = []
        for _ in range(args.tokens):
            runtime.generate_next_token()
            now = time.perf_counter()
            mine.append(now - last)
            last = now
        with lock:
            spans.append((began, last))
            steps.extend(mine)

    threads = [threading.Thread(target=decode, args=(runtime,)) for runtime in handles]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for runtime in handles:
        runtime.free()
    wall = max(end for _, end in spans) - min(begin for begin, _ in spans)
    return len(handles) * args.tokens / wall, float(np.median(steps))


def llama_batched_bench(path: Path, threads: int, tokens: int, counts: list[int], timeout: float = 1800.0) -> dict[int, float]:
    """k -> llama.cpp's S_TG (aggregate decode tok/s over k parallel sequences); {} when it did not finish in time."""
    n_ctx = max(counts) * (PROMPT + tokens) + 64
    try:
        out = run_peer(path, threads, tokens, counts, n_ctx, timeout)
    except subprocess.TimeoutExpired:
        print(f"llama-batched-bench did not finish within {timeout:.0f} s: no peer figures this round")
        return {}
    rows = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    return {int(row["pl"]): float(row["speed_tg"]) for row in rows}


def run_peer(path: Path, threads: int, tokens: int, counts: list[int], n_ctx: int, timeout: float) -> str:
    return subprocess.run([str(LLAMA_BATCHED_BENCH), "-m", str(path), "-c", str(n_ctx), "-b", "512", "-ub", "512",
                          "-npp", str(PROMPT), "-ntg", str(tokens), "-npl", ",".join(map(str, counts)), "-t", str(threads),
                          "--output-format", "jsonl"], check=True, capture_output=True, text=True, timeout=timeout).stdout


def render(path, args, counts, figures, latency, peer, load) -> str:
    med = lambda v: float(np.median(v))  # noqa: E731
    cell = lambda v: f"{med(v):.1f} ({min(v):.1f}-{max(v):.1f})"  # noqa: E731
    alone = med(latency[("batched", 1)]) if ("batched", 1) in latency else float("nan")
    lines = [
        f"model {path.name}, {args.threads} threads, Runtime handles (greedy generate_next_token), {args.repeat} rounds of "
        f"{args.tokens} decode steps per handle after a {PROMPT}-token prompt; load average {load[0]:.2f} before / "
        f"{load[1]:.2f} after. Median (range) over the rounds.",
        "",
        "| handles | batched: aggregate tok/s | batched / 1 handle | per-token latency / 1 handle alone | one by one: aggregate tok/s"
        " | batched / one by one, same round" + (" | llama-batched-bench S_TG | batched / llama.cpp |" if peer else " |"),
        "| ---: | ---: | ---: | ---: | ---: | ---: |" + (" ---: | ---: |" if peer else ""),
    ]
    base = med(figures[("batched", counts[0])]) if counts[0] == 1 else float("nan")
    for k in counts:
        row = (f"| {k} | {cell(figures[('batched', k)])} | {med(figures[('batched', k)]) / base:.2f}x | "
               f"{med(latency[('batched', k)]) / alone:.2f}x | {cell(figures[('one by one', k)])} |")
        paired = [b / o for b, o in zip(figures[("batched", k)], figures[("one by one", k)], strict=True)]
        row += f" {med(paired):.2f}x ({min(paired):.2f}-{max(paired):.2f}x) |"
        theirs = [p for p in figures.get(("llama.cpp", k), []) if not np.isnan(p)]
        if peer and not theirs:
            row += " did not finish | |"
        elif peer:
            # Paired by round; a round whose peer run did not finish has no pair.
            ours = [b / p for b, p in zip(figures[("batched", k)], figures[("llama.cpp", k)], strict=True) if not np.isnan(p)]
            row += f" {cell(theirs)} | {med(ours):.2f}x ({min(ours):.2f}-{max(ours):.2f}x) |"
        lines.append(row)
    return "\n".join(lines)
