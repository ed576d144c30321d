"""`ggufsm bench prefill`: prefill of N tokens (512 by default) on a real model, ggufsm beside llama.cpp.

Each round, interleaved: ggufsm's forward with the weights repacked at load (what
`LlamaModel` does by default, cpp/kernels/repack.h), the same forward on the file's
layout (`repack=False`, the kernels before the repack), and llama.cpp's own
`llama-bench -p N -n 0 -r 1` at the same thread count on the same file. A round's
three figures share its moment on this shared machine; the table gives medians and
ranges and the ratios of medians, the load average before and after, and the
repack's cost at load. Every sample goes to the record (`--json`).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import numpy as np

LLAMA_BENCH = Path("/work/peer/llama-build/bin/llama-bench")


def register_bench(bench_commands) -> None:
    parser = bench_commands.add_parser(
        "prefill", help="prefill tok/s (weights repacked and not) beside llama-bench pp",
        description="Prefill of --tokens tokens on a real model: ggufsm with the weights repacked at load, ggufsm on the "
                    "file's layout, and llama-bench -p N -n 0, interleaved round by round at the same thread count.")
    parser.add_argument("-m", "--model", required=True, help="registry name (smollm2, gemma3) or a GGUF path")
    parser.add_argument("--tokens", type=int, default=512, help="prompt length (default: %(default)s)")
    parser.add_argument("--threads", type=int, default=2, help="threads of both runners (default: %(default)s)")
    parser.add_argument("--repeat", type=int, default=5, help="interleaved rounds (default: %(default)s)")
    parser.add_argument("--no-peer", action="store_true", help="skip llama-bench")
    parser.set_defaults(handler=run)


def llama_bench_pp(path: Path, threads: int, tokens: int) -> float:
    """llama.cpp's prefill tok/s: `llama-bench -p tokens -n 0 -r 1`."""
    binary = shutil.which(str(LLAMA_BENCH)) or str(LLAMA_BENCH)
    out = subprocess.run([binary, "-m", str(path), "-t", str(threads), "-p", str(tokens), "-n", "0", "-r", "1", "-o", "json"],
                         check=True, capture_output=True, text=True, timeout=900).stdout
    return float(json.loads(out)[0]["avg_ts"])


def run(args) -> int:
    from ggufsm import _core
    from ggufsm.reference.model.gguf_file import open_gguf
    from ggufsm.reference.model.registry import resolve

    record = getattr(args, "record", None)
    path = Path(resolve(args.model, pull=True))
    gguf_file = open_gguf(path)
    if record is not None:
        record.model(path)
    peer = not args.no_peer and LLAMA_BENCH.exists()
    if peer and record is not None:
        record.peer_binary(LLAMA_BENCH)
    load_before = os.getloadavg()[0]
    models, load_s = {}, {}
    for name, repack in (("repacked", True), ("file layout", False)):
        started = time.perf_counter()
        models[name] = _core.LlamaModel(gguf_file.core, args.threads, repack=repack)
        models[name].finish_load()  # the output's repack and the layers' collapse after the first pass: load, not prefill
        load_s[name] = time.perf_counter() - started
    tokens = np.random.default_rng(0).integers(3, gguf_file.hyperparameters["n_vocab"], size=args.tokens).tolist()
    series: dict[str, list[float]] = {name: [] for name in models}
    if peer:
        series["llama-bench"] = []
    for _ in range(args.repeat):
        for name, model in models.items():
            session = _core.LlamaSession(model, args.tokens + 16)
            started = time.perf_counter()
            session.prefill(tokens, 0)
            series[name].append(args.tokens / (time.perf_counter() - started))
            if record is not None:
                record.sample(f"prefill {name}", series[name][-1], "tok/s")
        if peer:
            series["llama-bench"].append(llama_bench_pp(path, args.threads, args.tokens))
            if record is not None:
                record.sample("prefill llama-bench", series["llama-bench"][-1], "tok/s", runner="llama.cpp")
    repacked = models["repacked"]
    if record is not None:
        record.fact("repack_seconds", repacked.repack_seconds, "observed", "LlamaModel(repack=True): the repack's part of load")
        record.fact("weights_repacked_bytes", repacked.weights_repacked, "observed", "layer matrices in the Rows8 layout")
        if peer:
            record.compare("repacked / llama-bench", "prefill repacked", "prefill llama-bench")
            record.compare("file layout / llama-bench", "prefill file layout", "prefill llama-bench")
    print(render(path, args, series, load_s, repacked, (load_before, os.getloadavg()[0])))
    return 0


def render(path: Path, args, series, load_s, repacked, load) -> str:
    median = {name: float(np.median(v)) for name, v in series.items()}
    lines = [
        f"model {path.name}, prefill of {args.tokens} tokens, {args.threads} threads, {args.repeat} interleaved rounds, "
        f"load average {load[0]:.2f} before / {load[1]:.2f} after. Repack at load: {repacked.weights_repacked / 2**20:.1f} MiB "
        f"in {repacked.repack_seconds:.3f} s (load with it {load_s['repacked']:.3f} s, without {load_s['file layout']:.3f} s).",
        "",
        "| runner | tok/s, median (range) | / llama-bench (ratio of medians) |",
        "| --- | ---: | ---: |",
    ]
    for name, values in series.items():
        ratio = f"{median[name] / median['llama-bench']:.2f}x" if "llama-bench" in median else "-"
        lines.append(f"| {name} | {median[name]:.1f} ({min(values):.1f}-{max(values):.1f}) | {ratio} |")
    return "\n".join(lines) + "\n"
