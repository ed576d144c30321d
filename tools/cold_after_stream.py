"""A generate_next_token's own Python right after a weight-sized stream read: prefetched T0 (as the kernels read the
weights) or NTA (non-temporal), interleaved call by call.

    .venv/bin/python tools/cold_after_stream.py [ROUNDS] [MIB]

Between two batched passes the handles' Python runs cold (tools/token_python.py: ~10x its hot time): the pass's
weight stream evicts the interpreter's code and the handles' objects from the caches. Under cachegrind a cold
token misses the last level ~2,200 times, half code and half data (`valgrind --tool=cachegrind --cache-sim=yes`
on token_python's loop). If a stream read with the NTA hint leaves those lines in the last-level cache, the
kernels' weight reads could take that hint. One handle whose scheduler runs no pass (as token_python.py) times
one token after each stream of MIB (default 96, about SmolLM2's weights) read by `kernels.stream_sum` on this
thread, the two hints alternating; prints each hint's fastest and median token, the paired ratio of the rounds'
tokens (median and quartiles), and the streams' own GB/s.
"""

from __future__ import annotations

import statistics
import sys
import time

import numpy as np

from ggufsm._core import kernels
from ggufsm.reference.model.registry import resolve
from ggufsm.reference.runtime import Runtime, batching


def main(rounds: int, mib: int) -> None:
    batching.DecodeScheduler._run = lambda self, steps: None  # type: ignore[method-assign]
    runtime = Runtime()
    runtime.init_runtime(n_ctx=2 * rounds + 128, n_threads=1)
    runtime.load_model(resolve("smollm2"))
    runtime.generate(list(range(100, 116)), 0, temperature=0.0, stop_at_eos=False)
    for _ in range(20):
        runtime.generate_next_token()
    weights = np.ones(mib << 20, dtype=np.uint8)
    tokens: dict[bool, list[float]] = {False: [], True: []}
    streams: dict[bool, list[float]] = {False: [], True: []}
    for r in range(rounds):
        for nta in (False, True) if r % 2 == 0 else (True, False):
            began = time.perf_counter_ns()
            kernels.stream_sum(weights, nta)
            streamed = time.perf_counter_ns()
            runtime.generate_next_token()
            tokens[nta].append((time.perf_counter_ns() - streamed) / 1e3)
            streams[nta].append(weights.nbytes / (streamed - began))
    paired = sorted(t / n for t, n in zip(tokens[False], tokens[True], strict=True))
    for nta in (False, True):
        print(f"{'NTA' if nta else 'T0 '}: token after the stream fastest {min(tokens[nta]):.1f} us, median "
              f"{statistics.median(tokens[nta]):.1f} us; stream median {statistics.median(streams[nta]):.2f} GB/s")
    q = len(paired) // 4
    print(f"T0 / NTA, same round: median {statistics.median(paired):.2f}x (quartiles {paired[q]:.2f}-{paired[-q - 1]:.2f}x), "
          f"{rounds} rounds")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 200, int(sys.argv[2]) if len(sys.argv) > 2 else 96)
