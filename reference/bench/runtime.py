"""`ggufsm bench runtime -m MODEL`: load, prefill, decode and peak memory, ggufsm beside llama.cpp.

Each runtime is measured in a child process of its own, so that peak RSS is
that runtime's alone and neither warms the other's caches; the children run
one after the other in the same invocation, so the ratios compare like with
like on whatever the machine is doing at the time. The peer is llama.cpp
through llama-cpp-python, measured only when it is installed.

`--first-token` measures instead the time a user waits from a new handle to
the first token of a 32-token prompt, in fresh processes, warm and cold page
cache (first_token.py).
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

from ggufsm.reference.cli.options import add_model_option

PREFILL_LENGTHS = (128, 512)
DECODE_TOKENS = 128
RUNNERS = ("ggufsm", "llama.cpp")
# Plain English prose, long enough to tokenize into more than 512 tokens on any vocabulary.
BENCH_TEXT = " ".join([
    "The quick brown fox jumps over the lazy dog while the farmer watches from the old wooden porch.",
    "In the morning the market opens early, and traders bring apples, bread, cheese and fresh flowers.",
    "Scientists measured the river's flow for twelve years and found that spring floods arrived sooner.",
    "She wrote letters to her brother every week, describing the city, the weather and her new friends.",
] * 24)


def register_bench(bench_commands) -> None:
    add_options(bench_commands.add_parser("runtime", help="load, prefill and decode speed and peak RSS, beside llama.cpp"))


def add_options(parser) -> None:
    add_model_option(parser)
    parser.add_argument("-t", "--threads", type=int, default=2, help="threads each runtime uses")
    parser.add_argument("--repeat", type=int, default=3, help="runs per runtime; the best is kept (default 3)")
    parser.add_argument("--markdown", type=Path, default=None, help="also write the results as Markdown here")
    parser.add_argument("--first-token", action="store_true",
                        help="instead: handle + load + 32-token prompt + first token in fresh processes, warm and cold "
                             "page cache; -m may name several models, comma-separated")
    parser.add_argument("--baseline-python", type=Path, default=None, metavar="PY",
                        help="with --first-token: also measure the ggufsm installed for this interpreter (an A/B)")
    parser.set_defaults(handler=run)


def run(args) -> int:
    from ggufsm.reference.model.registry import resolve

    if args.first_token:
        from ggufsm.reference.bench import first_token

        return first_token.run(args)

    model_path = resolve(args.model, pull=True)
    runners = [name for name in RUNNERS if name == "ggufsm" or _peer_installed()]
    results = {name: _best_of(name, model_path, args.threads, args.repeat, args.record) for name in runners}
    record_runs(args.record, model_path, runners)
    table = render_markdown(model_path, args.threads, results, " ".join(["ggufsm", "bench", "runtime"] + sys.argv[4:]))
    print(table)
    if args.markdown:
        args.markdown.write_text(table, encoding="utf-8")
    return 0


def _peer_installed() -> bool:
    import importlib.util

    return importlib.util.find_spec("llama_cpp") is not None


def _best_of(runner: str, model_path: Path, threads: int, repeat: int, record=None) -> dict:
    runs = [_measure_in_child(runner, model_path, threads) for _ in range(repeat)]
    for run in runs if record is not None else ():
        for key, value in run.items():
            lower = not key.endswith("tok_s")
            record.sample(f"{runner} {key}", value, "s" if key == "load_s" else "MB" if key == "peak_rss_mb" else "tok/s",
                          runner=runner, better="lower" if lower else "higher")
    best = {"peak_rss_mb": min(run["peak_rss_mb"] for run in runs), "load_s": min(run["load_s"] for run in runs)}
    for key in runs[0]:
        if key.endswith("tok_s"):
            best[key] = max(run[key] for run in runs)
    return best


def record_runs(record, model_path: Path, runners: list[str]) -> None:
    """The file, the peer's package, and ggufsm / llama.cpp run by run (the runs of one runtime come one after
    the other, then the other's: paired by index, not by moment)."""
    record.model(model_path)
    if "llama.cpp" in runners:
        record.peer_package("llama_cpp_python")
        for name in record.series:
            if name.startswith("ggufsm "):
                key = name.removeprefix("ggufsm ")
                record.compare(f"ggufsm / llama.cpp {key}", name, f"llama.cpp {key}",
                               how="run i of ggufsm over run i of llama.cpp (each runtime's runs back to back)")


def _measure_in_child(runner: str, model_path: Path, threads: int) -> dict:
    command = [sys.executable, "-m", "ggufsm.reference.bench.runtime", runner, str(model_path), str(threads)]
    completed = subprocess.run(command, capture_output=True, text=True, check=False)
    if completed.returncode != 0:
        raise RuntimeError(f"{runner} benchmark child failed ({completed.returncode}): {completed.stderr[-2000:]}")
    return json.loads(completed.stdout.strip().splitlines()[-1])


def _bench_token_ids(tokenize) -> list[int]:
    ids = tokenize(BENCH_TEXT)
    assert len(ids) >= max(PREFILL_LENGTHS), "the benchmark text must cover the longest prefill"
    return ids


def _measure_ggufsm(model_path: str, threads: int) -> dict:
    from ggufsm.reference.runtime import Runtime

    runtime = Runtime()
    runtime.init_runtime(n_ctx=1024, n_threads=threads)
    started = time.perf_counter()
    runtime.load_model(model_path)
    result = {"load_s": time.perf_counter() - started}
    ids = _bench_token_ids(lambda text: runtime._model.tokenizer.encode(text, add_special=False))
    runtime.set_sampling(temperature=0.0)
    for length in PREFILL_LENGTHS:
        runtime.generate(ids[:length], 0)
        result[f"prefill{length}_tok_s"] = length / runtime.diagnostics()["request"]["prefill_s"]
    generation = runtime.generate(ids[:16], DECODE_TOKENS, stop_at_eos=False)
    # Decode steps over their time: a request's last token is emitted without one (runtime/request.py).
    result["decode_tok_s"] = generation.timings["decode_tok_s"]
    runtime.free()
    return result


def _measure_llama_cpp(model_path: str, threads: int) -> dict:
    import numpy as np
    from llama_cpp import Llama

    started = time.perf_counter()
    llm = Llama(model_path=model_path, n_ctx=1024, n_batch=512, n_threads=threads, n_threads_batch=threads,
                verbose=False)
    result = {"load_s": time.perf_counter() - started}
    ids = _bench_token_ids(lambda text: llm.tokenize(text.encode(), add_bos=False, special=False))
    for length in PREFILL_LENGTHS:
        llm.reset()
        started = time.perf_counter()
        llm.eval(ids[:length])
        result[f"prefill{length}_tok_s"] = length / (time.perf_counter() - started)
    llm.reset()
    llm.eval(ids[:16])
    started = time.perf_counter()
    for _ in range(DECODE_TOKENS):
        # Greedy, as ggufsm's side does: argmax of the last position's logits, then evaluate it.
        next_id = int(np.argmax(llm.scores[llm.n_tokens - 1]))
        llm.eval([next_id])
    result["decode_tok_s"] = DECODE_TOKENS / (time.perf_counter() - started)
    return result


def render_markdown(model_path: Path, threads: int, results: dict, command: str) -> str:
    ours, peer = results.get("ggufsm"), results.get("llama.cpp")
    rows = [("load (s, lower is better)", "load_s", True), ("peak RSS (MB, lower is better)", "peak_rss_mb", True)]
    rows += [(f"prefill {length} tokens (tok/s)", f"prefill{length}_tok_s", False) for length in PREFILL_LENGTHS]
    rows += [(f"decode {DECODE_TOKENS} tokens (tok/s)", "decode_tok_s", False)]
    lines = [f"Model `{model_path.name}`, {threads} threads, {os.cpu_count()} cores. Command: `{command}`", "",
             "| measure | ggufsm | llama.cpp (llama-cpp-python) | ggufsm / llama.cpp |", "| --- | ---: | ---: | ---: |"]
    for title, key, _lower_better in rows:
        peer_value = f"{peer[key]:.3f}" if peer else "not installed"
        ratio = f"{ours[key] / peer[key]:.2f}x" if peer else "-"
        lines.append(f"| {title} | {ours[key]:.3f} | {peer_value} | {ratio} |")
    return "\n".join(lines) + "\n"


def _child_main(runner: str, model_path: str, threads: int) -> None:
    measure = _measure_ggufsm if runner == "ggufsm" else _measure_llama_cpp
    result = measure(model_path, threads)
    result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(result))


if __name__ == "__main__":
    _child_main(sys.argv[1], sys.argv[2], int(sys.argv[3]))
