"""Forward-pass speed: prefill and decode tok/s, ggufsm's forwards beside llama.cpp in one run.

    ggufsm bench forward [-m MODEL.gguf] [-t 2] [--repeat 3] [--forwards fused,numpy]
    ggufsm bench forward --profile [-m MODEL.gguf]   (time per op: reference/bench/op_profile.py)

Only the forward is timed (no tokenizer, no sampler: the token ids are a fixed
pseudo-random sequence, greedy argmax is not taken). Prefill: one call over
128 and 512 prompt tokens from position 0 on a fresh cache. Decode: one-token
calls at positions 16.. after a 16-token prefill, and again at positions 896..
after an 896-token prefill (how attention over a long cache slows a step). llama.cpp is timed the same
way through llama-cpp-python (`eval(tokens)` after `reset()`; `n_batch=512`).
Each figure is the best of --repeat runs; ratios are ours / llama.cpp.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from ggufsm.reference.cli.options import add_model_option

PREFILL_LENGTHS = (128, 512)
DECODE_STARTS = (16, 896)  # decode steps must fit N_CTX after the last start
N_CTX = 1024


class ForwardUnderTest:
    """prefill(tokens) on a fresh cache, and decode(token, pos) after it."""

    name: str
    prefill: Callable[[list[int]], None]
    decode: Callable[[int, int], None]


class LlamaCppUnderTest(ForwardUnderTest):
    def __init__(self, path: Path, n_threads: int):
        import llama_cpp

        self.name = "llama.cpp"
        self.llm = llama_cpp.Llama(model_path=str(path), n_ctx=N_CTX, n_batch=512, n_ubatch=512, n_threads=n_threads,
                                   n_threads_batch=n_threads, verbose=False)

    def prefill(self, tokens: list[int]) -> None:
        self.llm.reset()
        self.llm.eval(tokens)

    def decode(self, token: int, pos: int) -> None:
        assert self.llm.n_tokens == pos
        self.llm.eval([token])


class GgufsmUnderTest(ForwardUnderTest):
    def __init__(self, name: str, model):
        self.name = name
        self.model = model
        self.session = None

    def prefill(self, tokens: list[int]) -> None:
        self.session = self.session or self.model.new_session(N_CTX)
        self.session.prefill(tokens, 0)

    def decode(self, token: int, pos: int) -> None:
        self.session.decode(token, pos)


def load_forward(name: str, path: Path, n_threads: int) -> ForwardUnderTest:
    """"fused" and "numpy" are ggufsm's two engines (reference/architectures/registry.py), "llama.cpp" the peer."""
    if name == "llama.cpp":
        return LlamaCppUnderTest(path, n_threads)
    from ggufsm.reference.architectures import ENGINES, load_tensors
    from ggufsm.reference.architectures.weights import read_tensors

    if name not in ENGINES:
        raise SystemExit(f"unknown forward {name!r}; one of {', '.join(ENGINES)}, llama.cpp")
    return GgufsmUnderTest(name, load_tensors(read_tensors(path), n_threads=n_threads, engine=name))


def measure(forward: ForwardUnderTest, token_ids: list[int], n_decode: int) -> dict[str, float]:
    figures = {}
    for length in PREFILL_LENGTHS:
        started = time.perf_counter()
        forward.prefill(token_ids[:length])
        figures[f"prefill{length}"] = length / (time.perf_counter() - started)
    for start in DECODE_STARTS:
        forward.prefill(token_ids[:start])
        started = time.perf_counter()
        for step in range(n_decode):
            forward.decode(token_ids[start + step], start + step)
        figures["decode" if start == DECODE_STARTS[0] else f"decode@{start}"] = n_decode / (time.perf_counter() - started)
    return figures


def register_bench(bench_commands) -> None:
    parser = bench_commands.add_parser("forward", help="forward-pass prefill and decode tok/s, beside llama.cpp")
    add_model_option(parser)
    parser.add_argument("-t", "--threads", type=int, default=2, help="threads each runtime uses")
    parser.add_argument("--repeat", type=int, default=3, help="runs per forward; the best is kept (default 3)")
    parser.add_argument("--decode-tokens", type=int, default=128, help="tokens decoded per run")
    parser.add_argument("--forwards", default="fused", help="comma-separated: fused, numpy (default fused)")
    parser.add_argument("--profile", action="store_true",
                        help="instead: the fused forward's time per op of one 512-token prefill and one decode step "
                             "(reference/bench/op_profile.py)")
    parser.add_argument("--handles", type=int, default=1,
                        help="with --profile: each decode step K sessions' tokens as one batched pass (default 1)")
    parser.add_argument("--shape", default=None, metavar="NAME=VALUE,...",
                        help="with --profile: the step shaped by these kernels.set_step_shape arguments "
                             "(e.g. walk_part_bytes=65536)")
    parser.set_defaults(handler=run)


def run(args) -> int:
    from ggufsm.reference.model.registry import resolve

    if args.profile:
        from ggufsm.reference.bench import op_profile

        return op_profile.run(args)

    path = resolve(args.model, pull=True)
    names = args.forwards.split(",") + (["llama.cpp"] if _peer_installed() else [])
    forwards = [load_forward(name, path, args.threads) for name in names]
    n_vocab = _n_vocab(path)
    if max(DECODE_STARTS) + args.decode_tokens > N_CTX:
        raise SystemExit(f"--decode-tokens {args.decode_tokens} from position {max(DECODE_STARTS)} do not fit n_ctx {N_CTX}")
    n_tokens = max(max(PREFILL_LENGTHS), max(DECODE_STARTS)) + args.decode_tokens
    token_ids = np.random.default_rng(0).integers(3, n_vocab, size=n_tokens).tolist()
    best: dict[str, dict[str, float]] = {forward.name: {} for forward in forwards}
    for _ in range(args.repeat):
        for forward in forwards:  # interleaved, so that a load spike hits every forward alike
            for key, value in measure(forward, token_ids, args.decode_tokens).items():
                best[forward.name][key] = max(value, best[forward.name].get(key, 0.0))
                args.record.sample(f"{forward.name} {key}", value, "tok/s",
                                   runner="llama.cpp" if forward.name == "llama.cpp" else "ggufsm")
    record_comparisons(args.record, path, best)
    print(render(path, args, best))
    return 0


def record_comparisons(record, path: Path, best: dict[str, dict[str, float]]) -> None:
    record.model(path)
    if "llama.cpp" in best:
        record.peer_package("llama_cpp_python")
        for name, figures in best.items():
            for key in figures if name != "llama.cpp" else ():
                record.compare(f"{name} / llama.cpp {key}", f"{name} {key}", f"llama.cpp {key}",
                               how="the same round (forwards interleaved)")


def render(path: Path, args, best: dict[str, dict[str, float]]) -> str:
    lines = [f"model {path.name}, {args.threads} threads, best of {args.repeat}, load average {os.getloadavg()[0]:.2f}", ""]
    keys = [f"prefill{n}" for n in PREFILL_LENGTHS] + ["decode"] + [f"decode@{start}" for start in DECODE_STARTS[1:]]
    lines.append("| forward | " + " | ".join(f"{key} tok/s" for key in keys) + " |")
    lines.append("| --- |" + " ---: |" * len(keys))
    peer = best.get("llama.cpp")
    for name, figures in best.items():
        cells = [f"{figures[key]:.1f}" + ("" if peer is None or name == "llama.cpp" else f" ({figures[key] / peer[key]:.2f}x)")
                 for key in keys]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _n_vocab(path: Path) -> int:
    from ggufsm.reference.architectures.weights import read_tensors

    return read_tensors(path).tensors["token_embd.weight"].shape[0]


def _peer_installed() -> bool:
    try:
        import llama_cpp  # noqa: F401
    except ImportError:
        return False
    return True
