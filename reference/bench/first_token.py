"""`ggufsm bench runtime --first-token`: load + a 32-token prompt + the first token, warm and cold page cache.

Each measurement is a fresh child process (`runtime.py`'s child entry,
RUNNER:first-token), so nothing of a previous load survives in the process;
what survives in the page cache is set per measurement: `warm` reads the
file through once just before, `cold` drops its pages with
posix_fadvise(POSIX_FADV_DONTNEED) (the eviction `vmtouch -e` does). The
kernel keeps pages another process maps, so the share of the file still
resident after the eviction (mincore) is reported: a cold figure is only
cold if that share is near zero. Rounds interleave runners and states; the
table gives medians and ranges, and the ratio round by round.
"""

from __future__ import annotations

import ctypes
import mmap
import os
import statistics
from pathlib import Path

STATES = ("warm", "cold")


def evict(path: Path) -> None:
    """Drops the file's clean pages from the page cache (those no process maps)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fdatasync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def warm(path: Path) -> None:
    """Reads the whole file once, so its pages are in the page cache."""
    with path.open("rb") as f:
        while f.read(16 << 20):
            pass


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


def run(args) -> int:
    from ggufsm.reference.bench.runtime import _measure_in_child, _peer_installed
    from ggufsm.reference.model.registry import resolve

    path = resolve(args.model, pull=True)
    runners = ["ggufsm"] + (["llama.cpp"] if _peer_installed() else [])
    figures: dict[tuple[str, str], list[dict]] = {(r, s): [] for r in runners for s in STATES}
    residency: dict[str, list[float]] = {s: [] for s in STATES}
    load = [os.getloadavg()[0]]
    record = getattr(args, "record", None)  # the CLI's benchmark record (reference/bench/record.py)
    if record is not None:
        record.model(path)
        if "llama.cpp" in runners:
            record.peer_package("llama_cpp_python")
    for _ in range(args.repeat):
        for state in STATES:
            for runner in runners:
                if state == "cold":
                    evict(path)
                else:
                    warm(path)
                residency[state].append(resident_share(path))
                run = _measure_in_child(runner + ":first-token", path, args.threads)
                figures[(runner, state)].append(run)
                if record is not None:
                    for key in ("load_s", "first_token_s"):
                        record.sample(f"{key} {state}", run[key], "s", runner=runner, better="lower")
                    record.sample(f"file resident {state}", residency[state][-1], "share", runner=runner)
    load.append(os.getloadavg()[0])
    print(render(path, args, runners, figures, residency, load))
    return 0


def render(path: Path, args, runners, figures, residency, load) -> str:
    def cell(values: list[float]) -> str:
        return f"{statistics.median(values):.3f} ({min(values):.3f}-{max(values):.3f})"

    lines = [f"model {path.name}, {args.threads} threads, {args.repeat} rounds (runners and states interleaved), "
             f"load average {load[0]:.2f} before / {load[1]:.2f} after; the file resident before each child: "
             + ", ".join(f"{s} {min(residency[s]):.0%}-{max(residency[s]):.0%}" for s in STATES), "",
             "| page cache | runner | load s, median (range) | load + 32-token prompt + first token s | ggufsm / llama.cpp |",
             "| --- | --- | ---: | ---: | ---: |"]
    for state in STATES:
        for runner in runners:
            runs = figures[(runner, state)]
            ratio = ""
            if runner == "ggufsm" and "llama.cpp" in runners:
                peer = figures[("llama.cpp", state)]
                ratios = [a["first_token_s"] / b["first_token_s"] for a, b in zip(runs, peer, strict=True)]
                ratio = f"{statistics.median(ratios):.2f}x ({min(ratios):.2f}-{max(ratios):.2f}x)"
            lines.append(f"| {state} | {runner} | {cell([r['load_s'] for r in runs])} | "
                         f"{cell([r['first_token_s'] for r in runs])} | {ratio} |")
    return "\n".join(lines)
