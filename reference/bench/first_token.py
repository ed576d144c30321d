"""`ggufsm bench runtime --first-token`: what a user waits for, from a new handle to the first token.

Each measurement is a fresh child process (this file run as a script by the
runner's interpreter: `child`), so nothing of a previous load survives in the
process. The child imports its runtime (timed apart, `import_s`), then times
from just before it makes a handle to the first token: ggufsm makes a
`Runtime`, `init_runtime`, `load_model` (the tokenizer, validation, the
finite-weights check and the weights' repack all inside) and
`generate(PROMPT, 1)` (encode the text, prefill it, sample greedily, decode
the token); llama-cpp-python makes a `Llama` and tokenizes, evaluates and
takes the argmax and its text. `load_s` ends when the model is loaded,
`first_token_s` at the token. Both tokenize the same text with the model's
own special tokens: the prompt's token count is in every sample, and the same.

Page cache, set per measurement. Each runner reads its own private copy of
the model, made once per invocation (copied, fsynced) in a temporary
directory beside the model cache: no other process maps it, so the kernel
can drop its pages. `warm`: the copy read through just before the child.
`cold`: its pages dropped with posix_fadvise(POSIX_FADV_DONTNEED) after an
fsync, and the share still resident read with mincore (over a map of our
own, unmapped before the child starts); a child is only started cold when
that share is at most COLD_LIMIT, else the bench stops with the share it
found. Models, states and runners interleave round by round; the table gives
medians, ranges, and the ratio round by round.

The runners' order, rotated round by round. A child's load writes fresh
memory (ggufsm's repack, the KV cache), and on a guest whose free memory the
host takes back (virtio_balloon's free page reporting) the first touch of a
page the host no longer backs waits for the host: which pages a child gets
depends on what the child before it freed. A ggufsm child that followed
another ggufsm child read 1.48x faster than the one before it (0.93-4.10x,
the same build as both runners), and one that followed llama.cpp's child
(which frees little anonymous memory) paid most. No counter shows the host's
state: the balloon's reporting interrupts (/proc/interrupts) barely move
across many children, and a child that waited 5-8 s after another read as
fast as one that did not. So the order is made even rather than waited out:
round r runs the runners in the r-th of their n! orders, so over n! rounds (6
for three runners, 2 for two) each runner follows each other one alike, and
each sample keeps the runner whose child ran just before it (`after`); the
order table gives each runner's first token by its predecessor.

`--baseline-python PY` adds the runner `ggufsm baseline`: the same child
run by another installation's interpreter (an A/B of two builds, measured
interleaved with the rest).
"""

from __future__ import annotations

import ctypes
import itertools
import json
import mmap
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

STATES = ("warm", "cold")
COLD_LIMIT = 0.01  # the largest resident share of the file a cold child may start with
EVICT_ATTEMPTS = 3
OURS, BASELINE, PEER = "ggufsm", "ggufsm baseline", "llama.cpp"
NOTHING = "none"  # the predecessor of an invocation's first child
# Plain English prose, the start of the other runtime benchmark's text: 32 tokens on SmolLM2, 33 with BOS on Gemma 3.
PROMPT = ("The quick brown fox jumps over the lazy dog while the farmer watches from the old wooden porch. "
          "In the morning the market opens early, and traders bring apples,")
N_CTX = 1024


# ─── the page cache ──────────────────────────────────────────────────────────


def private_copy(path: Path, directory: Path, runner: str) -> Path:
    """A copy of the model that only this bench and its children open, written through to the disk."""
    copy = directory / f"{runner.replace(' ', '-')}-{path.name}"
    shutil.copyfile(path, copy)
    fd = os.open(copy, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    return copy


def evict(path: Path) -> None:
    """Drops the file's clean pages from the page cache (those no process maps)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fdatasync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def make_cold(path: Path) -> float:
    """Evicts the file until at most COLD_LIMIT of it is resident; that share, or RuntimeError."""
    share = 1.0
    for _ in range(EVICT_ATTEMPTS):
        evict(path)
        share = resident_share(path)
        if share <= COLD_LIMIT:
            return share
    raise RuntimeError(f"{path}: {share:.1%} of the file stays in the page cache after {EVICT_ATTEMPTS} evictions "
                       f"(a process maps it?): no cold measure is possible")


def warm(path: Path) -> float:
    """Reads the whole file once, so its pages are in the page cache; the share resident after it."""
    with path.open("rb") as f:
        while f.read(16 << 20):
            pass
    return resident_share(path)


def resident_share(path: Path) -> float:
    """Share of the file's pages in the page cache now: mincore over a read-only map of it (libc's own
    mmap, as Python's mmap object does not give its address for a read-only map)."""
    size = path.stat().st_size
    if size == 0:
        return 1.0
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mmap.restype = ctypes.c_void_p
    libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long]
    libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
    libc.mincore.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p]
    fd = os.open(path, os.O_RDONLY)
    try:
        address = libc.mmap(None, size, mmap.PROT_READ, mmap.MAP_SHARED, fd, 0)
        if address in (None, ctypes.c_void_p(-1).value):
            raise OSError(ctypes.get_errno(), f"mmap of {path} failed")
        try:
            pages = (size + mmap.PAGESIZE - 1) // mmap.PAGESIZE
            vec = (ctypes.c_ubyte * pages)()
            if libc.mincore(address, size, vec) != 0:
                raise OSError(ctypes.get_errno(), f"mincore of {path} failed")
            return sum(v & 1 for v in vec) / pages
        finally:
            libc.munmap(address, size)
    finally:
        os.close(fd)


# ─── the bench ───────────────────────────────────────────────────────────────


def run(args) -> int:
    from ggufsm.reference.bench.runtime import _peer_installed
    from ggufsm.reference.model.registry import resolve

    paths = [resolve(name, pull=True) for name in args.model.split(",")]
    interpreters = {OURS: sys.executable}
    if getattr(args, "baseline_python", None):
        interpreters[BASELINE] = str(args.baseline_python)
    if _peer_installed():
        interpreters[PEER] = sys.executable
    runners = list(interpreters)
    record = getattr(args, "record", None)  # the CLI's benchmark record (reference/bench/record.py)
    figures: dict[tuple[str, str, str], list[dict]] = {}
    load = [os.getloadavg()[0]]
    with tempfile.TemporaryDirectory(prefix="ggufsm-first-token-", dir=paths[0].parent) as scratch:
        copies = {(path, runner): private_copy(path, Path(scratch), runner) for path in paths for runner in runners}
        previous = NOTHING
        for round_index in range(args.repeat):
            for path in paths:
                for state in STATES:
                    for runner in runner_order(runners, round_index):
                        copy = copies[(path, runner)]
                        share = make_cold(copy) if state == "cold" else warm(copy)
                        sample = measure_in_child(interpreters[runner], PEER if runner == PEER else OURS, copy, args.threads)
                        sample["resident"] = share
                        sample["after"], previous = previous, runner
                        figures.setdefault((path.name, state, runner), []).append(sample)
    load.append(os.getloadavg()[0])
    if record is not None:
        add_to_record(record, paths, runners, figures)
    print(render(paths, args, runners, figures, load))
    return 0


def runner_order(runners: list[str], round_index: int) -> list[str]:
    """The runners in round `round_index`'s order: the round-th of their permutations (cycling), so over n!
    rounds each runner follows each other runner alike. A rotation would not do: it keeps the cycle, and each
    runner would always follow the same one. The ratios pair samples of the same round, whatever the order."""
    orders = list(itertools.permutations(runners))
    return list(orders[round_index % len(orders)])


def measure_in_child(python: str, kind: str, path: Path, threads: int) -> dict:
    # -P: the script's folder (reference/bench, whose module names are generic) is not put on sys.path.
    command = [python, "-P", __file__, kind, str(path), str(threads)]
    completed = subprocess.run(command, capture_output=True, text=True, check=False)
    if completed.returncode != 0:
        raise RuntimeError(f"{kind} first-token child ({python}) failed ({completed.returncode}): {completed.stderr[-2000:]}")
    return json.loads(completed.stdout.strip().splitlines()[-1])


def add_to_record(record, paths: list[Path], runners: list[str], figures) -> None:
    from ggufsm.reference.bench.record import OBSERVED  # not at the top: the children run this file too

    for path in paths:
        record.model(path)
    if PEER in runners:
        record.peer_package("llama_cpp_python")
    for (model, state, runner), samples in figures.items():
        for sample in samples:
            for key in ("import_s", "load_s", "first_token_s"):
                record.sample(f"{model} {runner} {key} {state}", sample[key], "s", runner=runner, better="lower")
            record.sample(f"{model} {runner} file resident {state}", sample["resident"], "share", runner=runner,
                          better="lower")
            record.sample(f"{model} {runner} prompt tokens {state}", sample["prompt_tokens"], "tokens", runner=runner)
            record.sample(f"{model} {runner} first_token_s {state} after {sample['after']}", sample["first_token_s"],
                          "s", runner=runner, better="lower")
    record.fact("first-token runner order", "permuted round by round (round r: the r-th of the runners' n! orders)", OBSERVED,
                "reference/bench/first_token.py runner_order; each sample's predecessor in its 'after' name")
    for path in paths:
        for state in STATES:
            for other in runners[1:]:
                for key in ("load_s", "first_token_s"):
                    record.compare(f"{path.name} {OURS} / {other} {key} {state}",
                                   f"{path.name} {OURS} {key} {state}", f"{path.name} {other} {key} {state}",
                                   how=f"round by round, {OURS} over {other} (children interleaved)")


def render(paths: list[Path], args, runners: list[str], figures, load: list[float]) -> str:
    def cell(values: list[float]) -> str:
        return f"{statistics.median(values):.3f} ({min(values):.3f}-{max(values):.3f})"

    def row(cells: list[str]) -> str:
        return "| " + " | ".join(cells) + " |"

    lines = [f"{args.threads} threads, {args.repeat} rounds (models, page-cache states and runners interleaved), "
             f"load average {load[0]:.2f} before / {load[1]:.2f} after; each runner reads a private copy of the "
             f"model: warm read through before the child, cold evicted to at most {COLD_LIMIT:.0%} resident "
             "(mincore) before the child; the runners' order changed round by round (round r: the r-th of their n! "
             f"orders; {len(runners)}! rounds balance who follows whom)", "",
             row(["model", "page cache", "runner", "resident", "prompt tokens", "import s", "load s", "first token s",
                  *(f"{OURS} / {other}" for other in runners[1:])]),
             row(["---"] * 3 + ["---:"] * (5 + len(runners) - 1))]
    for path in paths:
        for state in STATES:
            ours = figures[(path.name, state, OURS)]
            for runner in runners:
                runs = figures[(path.name, state, runner)]
                ratios = []
                for other in runners[1:]:
                    if runner != OURS:
                        ratios.append("")
                        continue
                    theirs = figures[(path.name, state, other)]
                    r = [a["first_token_s"] / b["first_token_s"] for a, b in zip(ours, theirs, strict=True)]
                    ratios.append(f"{statistics.median(r):.2f}x ({min(r):.2f}-{max(r):.2f}x)")
                resident = [run["resident"] for run in runs]
                tokens = sorted({run["prompt_tokens"] for run in runs})
                lines.append(row([path.name, state, runner, f"{min(resident):.0%}-{max(resident):.0%}",
                                  ",".join(map(str, tokens)), cell([r["import_s"] for r in runs]),
                                  cell([r["load_s"] for r in runs]), cell([r["first_token_s"] for r in runs]), *ratios]))
    lines += ["", f"First token s by the runner whose child ran just before (order permuted round by round): median "
                  f"(samples); '{NOTHING}' is the invocation's first child", "",
              row(["model", "page cache", "runner", *(f"after {p}" for p in [*runners, NOTHING])]),
              row(["---"] * 3 + ["---:"] * (len(runners) + 1))]
    for path in paths:
        for state in STATES:
            for runner in runners:
                runs = figures[(path.name, state, runner)]
                cells = []
                for before in [*runners, NOTHING]:
                    times = [r["first_token_s"] for r in runs if r["after"] == before]
                    cells.append(f"{statistics.median(times):.3f} ({len(times)})" if times else "-")
                lines.append(row([path.name, state, runner, *cells]))
    return "\n".join(lines)


# ─── the child: one measurement in a fresh process ──────────────────────────


def first_token_ggufsm(model_path: str, threads: int) -> dict:
    started = time.perf_counter()
    from ggufsm import Runtime

    imported = time.perf_counter()
    runtime = Runtime()
    runtime.init_runtime(n_ctx=N_CTX, n_threads=threads)
    runtime.load_model(model_path)
    loaded = time.perf_counter()
    generation = runtime.generate(PROMPT, 1, stop_at_eos=False, temperature=0.0)
    done = time.perf_counter()
    return {"import_s": imported - started, "load_s": loaded - imported, "first_token_s": done - imported,
            "prompt_tokens": len(generation.prompt_token_ids), "token": generation.token_ids[0]}


def first_token_llama_cpp(model_path: str, threads: int) -> dict:
    started = time.perf_counter()
    import numpy as np
    from llama_cpp import Llama

    imported = time.perf_counter()
    llm = Llama(model_path=model_path, n_ctx=N_CTX, n_batch=512, n_threads=threads, n_threads_batch=threads,
                verbose=False)
    loaded = time.perf_counter()
    # add_bos adds the model's own start token only when its vocabulary asks for one, as ggufsm's encode does.
    ids = llm.tokenize(PROMPT.encode(), add_bos=True, special=False)
    llm.eval(ids)
    token = int(np.argmax(llm.scores[llm.n_tokens - 1]))
    llm.detokenize([token])
    done = time.perf_counter()
    return {"import_s": imported - started, "load_s": loaded - imported, "first_token_s": done - imported,
            "prompt_tokens": len(ids), "token": token}


if __name__ == "__main__":
    measure = first_token_llama_cpp if sys.argv[1] == PEER else first_token_ggufsm
    print(json.dumps(measure(sys.argv[2], int(sys.argv[3]))))
