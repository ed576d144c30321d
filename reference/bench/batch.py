"""`ggufsm bench batch`: several handles decoding at once on one model, as one pass or one after another.

    ggufsm bench batch -m smollm2 [--handles 1,2,4,8] [-t 2] [--repeat 3] [--tokens 32] [--peer]

For each count k, k sessions (each its own KV cache, after a 16-token prompt)
decode --tokens steps each, timed two ways in the same round:
  * `batched`: one `_core.DecodeBatch` pass per step for all k (the weights
    read once per step; what reference/runtime/batching.py runs when k handles
    generate at once);
  * `one by one`: each session's own decode in turn (what k handles cost when
    nothing batches them).
Aggregate tok/s is k x steps / time; a handle's per-token latency is the time
of the pass that gives it its token. With --peer, llama.cpp's own
`llama-batched-bench -npp 16 -ntg TOKENS -npl HANDLES` on the same file runs in
each round too (S_TG: its aggregate decode tok/s over the parallel sequences).
Rounds interleave every contender, and each figure is the median of the rounds
with their range beside it (a machine shared with other jobs moves them all);
`batched / one by one` pairs the two ways of the same round, the figure least
moved by the neighbours' load.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import numpy as np

PROMPT = 16
LLAMA_BATCHED_BENCH = Path("/work/peer/llama-build/bin/llama-batched-bench")


def register_bench(bench_commands) -> None:
    parser = bench_commands.add_parser("batch", help="aggregate decode of several handles batched as one pass, beside llama-batched-bench")
    parser.add_argument("-m", "--model", default="smollm2", help="registry name or GGUF path (default smollm2)")
    parser.add_argument("--handles", default="1,2,4,8", help="comma-separated handle counts (default %(default)s)")
    parser.add_argument("-t", "--threads", type=int, default=2, help="threads of the forward's pool")
    parser.add_argument("--repeat", type=int, default=3, help="rounds (default 3)")
    parser.add_argument("--tokens", type=int, default=32, help="decode steps per handle per run (default 32)")
    parser.add_argument("--peer", action="store_true", help=f"also run {LLAMA_BATCHED_BENCH} in each round")
    parser.set_defaults(handler=run)


def run(args) -> int:
    from ggufsm import _core
    from ggufsm.reference.model.gguf_file import open_gguf
    from ggufsm.reference.model.registry import resolve

    path = resolve(args.model, pull=True)
    gguf_file = open_gguf(path)
    model = _core.LlamaModel(gguf_file.core, args.threads)
    batch = _core.DecodeBatch(model)
    counts = [int(k) for k in args.handles.split(",")]
    rng = np.random.default_rng(0)
    tokens = rng.integers(3, gguf_file.hyperparameters["n_vocab"], size=(max(counts), PROMPT + args.tokens)).tolist()
    load_before = os.getloadavg()[0]
    figures: dict[tuple[str, int], list[float]] = {}  # (way, k) -> aggregate tok/s per round
    latency: dict[tuple[str, int], list[float]] = {}  # (way, k) -> seconds per token of one handle
    peer = LLAMA_BATCHED_BENCH.exists() and args.peer
    for _ in range(args.repeat):
        for k in counts:
            for way in ("batched", "one by one"):
                sessions = [_core.LlamaSession(model, PROMPT + args.tokens) for _ in range(k)]
                for s, seq in zip(sessions, tokens[:k], strict=True):
                    s.prefill(seq[:PROMPT], 0)
                started = time.perf_counter()
                for step in range(args.tokens):
                    pos = PROMPT + step
                    if way == "batched":
                        batch.decode(sessions, [seq[pos] for seq in tokens[:k]], [pos] * k)
                    else:
                        for s, seq in zip(sessions, tokens[:k], strict=True):
                            s.decode(seq[pos], pos)
                seconds = time.perf_counter() - started
                figures.setdefault((way, k), []).append(k * args.tokens / seconds)
                latency.setdefault((way, k), []).append(seconds / args.tokens)
        if peer:
            for k, s_tg in llama_batched_bench(path, args.threads, args.tokens, counts).items():
                figures.setdefault(("llama.cpp", k), []).append(s_tg)
    record_figures(args.record, path, counts, figures, latency, peer)
    print(render(path, args, counts, figures, latency, peer, (load_before, os.getloadavg()[0])))
    return 0


def llama_batched_bench(path: Path, threads: int, tokens: int, counts: list[int]) -> dict[int, float]:
    """k -> llama.cpp's S_TG (aggregate decode tok/s over k parallel sequences)."""
    n_ctx = max(counts) * (PROMPT + tokens) + 64
    out = subprocess.run([str(LLAMA_BATCHED_BENCH), "-m", str(path), "-c", str(n_ctx), "-b", "512", "-ub", "512",
                          "-npp", str(PROMPT), "-ntg", str(tokens), "-npl", ",".join(map(str, counts)), "-t", str(threads),
                          "--output-format", "jsonl"], check=True, capture_output=True, text=True, timeout=1800).stdout
    rows = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    return {int(row["pl"]): float(row["speed_tg"]) for row in rows}


def record_figures(record, path, counts, figures, latency, peer) -> None:
    """Every round's figures as series of the record, and the round-by-round ratios."""
    record.model(path)
    if peer:
        record.peer_binary(LLAMA_BATCHED_BENCH)
    for (way, k), values in figures.items():
        for value in values:
            record.sample(f"{way} k={k} aggregate", value, "tok/s", runner="llama.cpp" if way == "llama.cpp" else "ggufsm")
    for (way, k), values in latency.items():
        for value in values:
            record.sample(f"{way} k={k} per-token latency", value, "s", better="lower")
    for k in counts:
        record.compare(f"batched / one by one k={k}", f"batched k={k} aggregate", f"one by one k={k} aggregate",
                       how="the two ways of the same round")
        if peer:
            record.compare(f"batched / llama.cpp k={k}", f"batched k={k} aggregate", f"llama.cpp k={k} aggregate",
                           how="the same round (llama-batched-bench S_TG)")


def render(path, args, counts, figures, latency, peer, load) -> str:
    med = lambda v: float(np.median(v))  # noqa: E731
    cell = lambda v: f"{med(v):.1f} ({min(v):.1f}-{max(v):.1f})"  # noqa: E731
    alone = med(latency[("one by one", 1)])
    lines = [
        f"model {path.name}, {args.threads} threads, {args.repeat} rounds of {args.tokens} decode steps per handle after a "
        f"{PROMPT}-token prompt; load average {load[0]:.2f} before / {load[1]:.2f} after. Median (range) over the rounds.",
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
        if peer:
            ours = [b / p for b, p in zip(figures[("batched", k)], figures[("llama.cpp", k)], strict=True)]
            row += f" {cell(figures[('llama.cpp', k)])} | {med(ours):.2f}x ({min(ours):.2f}-{max(ours):.2f}x) |"
        lines.append(row)
    return "\n".join(lines)
