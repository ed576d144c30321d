"""Where the time between two batched decode passes goes: perf_counter stamps of every pass and every handle.

    .venv/bin/python tools/batch_stamps.py [HANDLES] [THREADS]

HANDLES Runtime handles (default 4) on SmolLM2, each its own 16-token prompt, then 48 greedy
generate_next_token calls each on its own thread, started together (as `ggufsm bench batch`). The
scheduler's pass, each handle's wake-up from its decode step, its sampling, its command's return, its
next call and its next step's queueing are stamped (wrappers around the runtime's functions, nothing in
the runtime itself). Prints the median pass and gap between passes, the median offset of each event
from the end of the pass before it, and four gaps event by event.
"""

from __future__ import annotations

import statistics
import sys
import threading
import time
from collections import defaultdict

import numpy as np

from ggufsm.reference import sampling
from ggufsm.reference.model.registry import resolve
from ggufsm.reference.runtime import Runtime, batching
from ggufsm.reference.runtime import lifecycle as lifecycle_module

TOKENS, PROMPT = 48, 16
events: list[tuple[float, str, int]] = []  # (perf_counter, what, thread)


def stamp(what: str) -> None:
    events.append((time.perf_counter(), what, threading.get_ident()))


def stamped(owner, name: str, before: str | None, after: str | None) -> None:
    original = getattr(owner, name)

    def wrapper(*args, **kwargs):
        if before:
            stamp(before)
        result = original(*args, **kwargs)
        if after:
            stamp(after)
        return result

    setattr(owner, name, wrapper)


def main(handles: int, threads: int) -> None:
    stamped(batching.DecodeScheduler, "_run", "pass_start", "pass_end")
    stamped(batching.DecodeScheduler, "decode", "queue", "woke")
    stamped(sampling.Sampler, "sample", None, "sampled")
    stamped(lifecycle_module.Lifecycle, "perform", "call", "return")
    path = resolve("smollm2")
    rng = np.random.default_rng(0)
    runtimes = []
    for _ in range(handles + 1):  # the first holds the shared forward between the others' loads
        runtime = Runtime()
        runtime.init_runtime(n_ctx=PROMPT + TOKENS + 8, n_threads=threads)
        runtime.load_model(path)
        runtimes.append(runtime)
    for runtime in runtimes[1:]:
        runtime.generate(rng.integers(3, 40000, PROMPT).tolist(), 0, temperature=0.0, stop_at_eos=False)
    barrier = threading.Barrier(handles)

    def steps(runtime: Runtime) -> None:
        barrier.wait()
        for _ in range(TOKENS):
            runtime.generate_next_token()

    events.clear()
    workers = [threading.Thread(target=steps, args=(runtime,)) for runtime in runtimes[1:]]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    report(sorted(events))


def report(ordered: list[tuple[float, str, int]]) -> None:
    starts = [t for t, what, _ in ordered if what == "pass_start"]
    ends = [t for t, what, _ in ordered if what == "pass_end"]
    gaps = list(zip(ends[:-1], starts[1:], strict=False))
    print(f"passes {len(starts)}; pass median {statistics.median(e - s for s, e in zip(starts, ends, strict=False)) * 1e3:.2f} ms; "
          f"gap between passes median {statistics.median(s - e for e, s in gaps) * 1e6:.0f} us")
    offsets: dict[tuple[str, int], list[float]] = defaultdict(list)
    for end, start in gaps[10:]:
        seen: dict[str, int] = defaultdict(int)
        for t, what, _ in ordered:
            if end < t <= start:
                seen[what] += 1
                offsets[(what, seen[what])].append((t - end) * 1e6)
    for key in sorted(offsets, key=lambda k: statistics.median(offsets[k])):
        print(f"{key[0]:>12} #{key[1]}  +{statistics.median(offsets[key]):7.1f} us (n={len(offsets[key])})")
    names: dict[int, str] = {}
    for end, start in gaps[20:24]:
        print(f"--- a gap of {(start - end) * 1e6:.0f} us")
        for t, what, thread in ordered:
            if end <= t <= start:
                print(f"  +{(t - end) * 1e6:7.1f} {names.setdefault(thread, f'T{len(names)}')} {what}")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 4, int(sys.argv[2]) if len(sys.argv) > 2 else 2)
