"""Forward-pass speed: prefill and decode tok/s, ggufsm's forwards beside llama.cpp in one run.

    python -m ggufsm.reference.bench_forward [-m MODEL.gguf] [-t 2] [--repeat 3] [--forwards fused,reference]

Only the forward is timed (no tokenizer, no sampler: the token ids are a fixed
pseudo-random sequence, greedy argmax is not taken). Prefill: one call over
128 and 512 prompt tokens from position 0 on a fresh cache. Decode: one-token
calls at positions 16.. after a 16-token prefill. llama.cpp is timed the same
way through llama-cpp-python (`eval(tokens)` after `reset()`; `n_batch=512`).
Each figure is the best of --repeat runs; ratios are ours / llama.cpp.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path
from typing import Callable

import numpy as np

MODEL = Path.home() / ".cache" / "ggufsm" / "models" / "SmolLM2-135M-Instruct.Q4_1.gguf"
PREFILL_LENGTHS = (128, 512)
DECODE_START = 16
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
    if name == "llama.cpp":
        return LlamaCppUnderTest(path, n_threads)
    if name == "reference":
        from ggufsm.reference.architectures import load_reference_model
        from ggufsm.reference.weights import read_tensors

        return GgufsmUnderTest(name, load_reference_model(read_tensors(path)))
    if name == "fused":
        from ggufsm.reference import architectures
        from ggufsm.reference.gguf_file import open_gguf

        return GgufsmUnderTest(name, architectures.load(open_gguf(path), n_threads=n_threads))
    raise SystemExit(f"unknown forward {name!r}")


def measure(forward: ForwardUnderTest, token_ids: list[int], n_decode: int) -> dict[str, float]:
    figures = {}
    for length in PREFILL_LENGTHS:
        started = time.perf_counter()
        forward.prefill(token_ids[:length])
        figures[f"prefill{length}"] = length / (time.perf_counter() - started)
    forward.prefill(token_ids[:DECODE_START])
    started = time.perf_counter()
    for step in range(n_decode):
        forward.decode(token_ids[DECODE_START + step], DECODE_START + step)
    figures["decode"] = n_decode / (time.perf_counter() - started)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-m", "--model", type=Path, default=MODEL)
    parser.add_argument("-t", "--threads", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--decode-tokens", type=int, default=128)
    parser.add_argument("--forwards", default="fused", help="comma-separated: fused, reference")
    args = parser.parse_args()

    names = args.forwards.split(",") + ["llama.cpp"]
    forwards = [load_forward(name, args.model, args.threads) for name in names]
    n_vocab = 49152 if "SmolLM2" in args.model.name else 1000
    token_ids = np.random.default_rng(0).integers(3, n_vocab, size=max(PREFILL_LENGTHS) + DECODE_START + args.decode_tokens).tolist()
    best: dict[str, dict[str, float]] = {forward.name: {} for forward in forwards}
    for _ in range(args.repeat):
        for forward in forwards:  # interleaved, so that a load spike hits every forward alike
            for key, value in measure(forward, token_ids, args.decode_tokens).items():
                best[forward.name][key] = max(value, best[forward.name].get(key, 0.0))

    print(f"model {args.model.name}, {args.threads} threads, best of {args.repeat}, load average {os.getloadavg()[0]:.2f}")
    keys = [f"prefill{n}" for n in PREFILL_LENGTHS] + ["decode"]
    print("| forward | " + " | ".join(f"{key} tok/s" for key in keys) + " |")
    print("| --- |" + " ---: |" * len(keys))
    peer = best["llama.cpp"]
    for name, figures in best.items():
        cells = [f"{figures[key]:.1f}" + ("" if name == "llama.cpp" else f" ({figures[key] / peer[key]:.2f}x)") for key in keys]
        print(f"| {name} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
