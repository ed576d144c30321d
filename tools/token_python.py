"""A generate_next_token's own Python, with the forward taken out: its time hot, and cold as a batched token meets it.

    .venv/bin/python tools/token_python.py [TOKENS] [MODEL]

One handle on MODEL (default smollm2) whose scheduler runs no pass (the logits stay the prefill's, so every
token is the same greedy one): what is left of a token is the lifecycle, the scheduler's bookkeeping, the
sampler and the detokenizer. Each call is timed hot (back to back) and cold (after a 64 MiB write evicts the
caches, as a decode pass streaming the weights does before the handles' Python between passes runs). Prints
the fastest and the median of TOKENS calls each, in thread CPU time and wall time. Against another build, run
its python on this file, interleaved.
"""

from __future__ import annotations

import statistics
import sys
import time

import numpy as np

from ggufsm.reference.model.registry import resolve
from ggufsm.reference.runtime import Runtime, batching


def main(tokens: int, model: str) -> None:
    batching.DecodeScheduler._run = lambda self, steps: None  # type: ignore[method-assign]
    runtime = Runtime()
    runtime.init_runtime(n_ctx=4 * tokens + 128, n_threads=1)
    runtime.load_model(resolve(model))
    runtime.generate(list(range(100, 116)), 0, temperature=0.0, stop_at_eos=False)
    for _ in range(50):
        runtime.generate_next_token()
    evict = np.ones(16 << 20, dtype=np.float32)
    figures = []
    for clock in (time.thread_time_ns, time.perf_counter_ns):
        for cold in (False, True):
            spent = []
            for _ in range(tokens):
                if cold:
                    evict += 1.0
                started = clock()
                runtime.generate_next_token()
                spent.append(clock() - started)
            figures.append(f"{'cold' if cold else 'hot'} {min(spent) / 1e3:.1f}/{statistics.median(spent) / 1e3:.1f}")
    print(f"us a token, fastest/median of {tokens}: thread CPU {figures[0]}, {figures[1]}; wall {figures[2]}, {figures[3]}")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 400, sys.argv[2] if len(sys.argv) > 2 else "smollm2")
