"""`ggufsm bench decode --long-context`: prefill of 4,096 tokens, and decode at position 4,000 after a 4,000-token
prefill, beside llama.cpp's own `llama-bench -p 4096 -n 0` and `llama-bench -p 0 -n 32 -d 4000`.

Rounds interleave the contenders (ggufsm prefill, llama-bench pp4096, ggufsm decode at depth, llama-bench tg32
at depth 4000), so load swings hit both alike; the ratio is taken round by round and given as a median and a
range, with the load average and the int8 peak sampled in each round, and the read bandwidth sampled around each
round's decode (reference/bench/limits.py, the benches' one read probe).
ggufsm runs the fused forward directly (`_core.LlamaSession`, n_batch 512 as llama-bench's default), the token ids
pseudo-random, as llama-bench's are.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import time
from pathlib import Path

import numpy as np

PREFILL = 4096
DEPTH = 4000
DECODE_STEPS = 32


def llama_bench(binary: Path, path: Path, threads: int, *flags: str) -> float:
    out = subprocess.run([str(binary), "-m", str(path), "-t", str(threads), "-r", "1", "-o", "json", *flags],
                         check=True, capture_output=True, text=True, timeout=1800).stdout
    return float(json.loads(out)[0]["avg_ts"])


def run(args) -> int:
    from ggufsm import _core
    from ggufsm.reference.bench.decode import LLAMA_BENCH
    from ggufsm.reference.bench.limits import Limits, record_beside
    from ggufsm.reference.model.gguf_file import open_gguf
    from ggufsm.reference.model.registry import resolve

    path = resolve(args.model, pull=True)
    gguf_file = open_gguf(path)
    model = _core.LlamaModel(gguf_file.core, args.threads)
    # The work the load leaves for after the first pass (the output's repack, the layers' collapse onto 2 MiB
    # pages) finishes the load, as llama-bench's warm-up run finishes its: done here, not inside the first
    # round's timed prefill and decode.
    model.finish_load()
    n_ctx = PREFILL + 16
    tokens = np.random.default_rng(0).integers(3, gguf_file.hyperparameters["n_vocab"], size=n_ctx).tolist()
    limits = Limits(args.threads)
    peer = LLAMA_BENCH.exists() and args.peer
    figures: dict[str, list[float]] = {"prefill": [], "peer prefill": [], "decode": [], "peer decode": []}
    load = [os.getloadavg()[0]]
    record = getattr(args, "record", None)  # the CLI's benchmark record (reference/bench/record.py)
    if record is not None:
        record.model(path)
        if peer:
            record.peer_binary(LLAMA_BENCH)
    for _ in range(args.repeat):
        gops = limits.sample_peak()
        if record is not None:
            record.limit("int8 peak (avx2)", gops, "GOP/s")
        session = _core.LlamaSession(model, n_ctx, 512)
        started = time.perf_counter()
        session.prefill(tokens[:PREFILL], 0)
        figures["prefill"].append(PREFILL / (time.perf_counter() - started))
        if peer:
            figures["peer prefill"].append(llama_bench(LLAMA_BENCH, path, args.threads, "-p", str(PREFILL), "-n", "0"))
        session = _core.LlamaSession(model, n_ctx, 512)
        session.prefill(tokens[:DEPTH], 0)

        def decode(session=session) -> float:
            started = time.perf_counter()
            for step in range(DECODE_STEPS):
                session.decode(tokens[DEPTH + step], DEPTH + step)
            return DECODE_STEPS / (time.perf_counter() - started)

        tok_s, beside = limits.around(decode)
        figures["decode"].append(tok_s)
        if record is not None:
            record_beside(record, "read bandwidth around decode", beside)
        if peer:
            figures["peer decode"].append(llama_bench(LLAMA_BENCH, path, args.threads, "-p", "0", "-n", str(DECODE_STEPS),
                                                      "-d", str(DEPTH)))
    load.append(os.getloadavg()[0])
    if record is not None:
        names = {"prefill": f"prefill {PREFILL}", "decode": f"decode at {DEPTH}"}
        for key, name in names.items():
            for value in figures[key]:
                record.sample(name, value, "tok/s")
            for value in figures[f"peer {key}"]:
                record.sample(f"{name} llama.cpp", value, "tok/s", runner="llama.cpp (llama-bench)")
            if figures[f"peer {key}"]:
                record.compare(f"{name}: ggufsm / llama.cpp", name, f"{name} llama.cpp")
    print(render(path, args, figures, limits, load))
    return 0


def render(path: Path, args, figures, limits, load) -> str:
    def cell(values: list[float]) -> str:
        return f"{statistics.median(values):.1f} ({min(values):.1f}-{max(values):.1f})" if values else "not run"

    def ratio(ours: list[float], theirs: list[float]) -> str:
        if not theirs:
            return "-"
        r = [a / b for a, b in zip(ours, theirs, strict=True)]
        return f"{statistics.median(r):.2f}x ({min(r):.2f}-{max(r):.2f}x)"

    return "\n".join([
        f"model {path.name}, {args.threads} threads, {args.repeat} interleaved rounds, load average {load[0]:.2f} before / "
        f"{load[1]:.2f} after; {limits.text()}",
        "",
        "| measure | ggufsm tok/s, median (range) | llama-bench tok/s | ggufsm / llama.cpp, round by round |",
        "| --- | ---: | ---: | ---: |",
        f"| prefill {PREFILL} tokens (llama-bench -p {PREFILL} -n 0) | {cell(figures['prefill'])} | "
        f"{cell(figures['peer prefill'])} | {ratio(figures['prefill'], figures['peer prefill'])} |",
        f"| decode {DECODE_STEPS} steps at position {DEPTH} (llama-bench -p 0 -n {DECODE_STEPS} -d {DEPTH}) | "
        f"{cell(figures['decode'])} | {cell(figures['peer decode'])} | {ratio(figures['decode'], figures['peer decode'])} |",
    ])
