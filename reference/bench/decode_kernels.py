"""The decode half of `ggufsm bench kernels --decode-shapes`: every product of a decode step of both models, alone.

Each matrix of a SmolLM2 and a Gemma 3 decode step (its real type and shape) is timed as one activation row (m = 1)
against weights streamed from memory, in the layout a loaded model's decode steps read: Rows8 where the type is
repacked at load (cpp/kernels/repack.h) and for the Q8_0 output matrix (tied to the embedding, repacked after the
first pass: cpp/forward/output_repack.h), the file's layout otherwise (Gemma 3's Q8_0 wv). File-layout copies sit
on 4 KiB pages (an anonymous map, as the model's file map is), not on numpy's huge-page-advised heap. Each round is
paired with the read probe (reference/bench/limits.py) sampled right before and right after it, as `measure_all`
does; a cell's share is the median of the pairs. The figures say which kernels stream below the memory rate, and by
how much.

Beside them, each matrix that fits in cache is also timed on one thread (the caller alone) and its fastest call
kept: the kernel's own rate a thread, the memory out of the way and a call that ran uninterrupted, so it holds
on a busy machine where the two-thread rates do not. `headroom` is that rate times the threads over the read
probe: how far a thread's arithmetic outruns its share of the memory. A product can stream near the probe's rate
only when it is well above 1 (the arithmetic and the stream then overlap with room to spare); at 1 the kernel
spends as long computing a byte as the memory takes to bring it.
"""

from __future__ import annotations

import mmap
from dataclasses import dataclass, field

import numpy as np
from gguf.constants import GGMLQuantizationType

# Matrices up to this size are also timed in cache (a core's L2 is 512 KiB-2 MiB; the shared L3 holds more).
IN_CACHE_BYTES = 4 << 20
IN_CACHE_CALLS = 20
# One-thread calls a round of the in-cache rate a thread; the fastest is kept (an uninterrupted one).
ONE_THREAD_CALLS = 50
# The models whose decode step is measured: (label, registry name).
MODELS: tuple[tuple[str, str], ...] = (("SmolLM2", "smollm2"), ("Gemma 3", "gemma3"))


def shapes_of(label: str, gguf_file) -> list[tuple[str, str, str, int, int]]:
    """(model, matrix, type, rows, cols) of each distinct product of a decode step of `gguf_file`, read from its
    tensor table: every layer matrix (blk.N.*, 2-D) by (type, rows, cols), the names that share one joined by '/'
    (attn_q/attn_output), in the order the layer reads them; then the output matrix (the embedding when tied)."""
    seen: dict[tuple[str, int, int], list[str]] = {}
    for name, info in gguf_file.tensors.items():
        if not name.startswith("blk.") or len(info.shape) != 2:
            continue
        matrix = name.split(".", 2)[2].removesuffix(".weight")
        key = (info.type.name, int(info.shape[1]), int(info.shape[0]))  # GGUF shape is (cols, rows)
        if matrix not in seen.setdefault(key, []):
            seen[key].append(matrix)
    order = ("attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down")
    rank = lambda m: order.index(m) if m in order else len(order)  # noqa: E731
    shapes = [(label, "/".join(sorted(names, key=rank)), tname, rows, cols)
              for (tname, rows, cols), names in sorted(seen.items(), key=lambda kv: min(rank(m) for m in kv[1]))]
    tied = "output.weight" not in gguf_file.tensors
    out = gguf_file.tensors["token_embd.weight" if tied else "output.weight"]
    shapes.append((label, "output (tied)" if tied else "output", out.type.name, int(out.shape[1]), int(out.shape[0])))
    return shapes


def decode_shapes() -> list[tuple[str, str, str, int, int]]:
    """Every product of a decode step of each of MODELS (shapes_of), from the registry's files (pulled if absent)."""
    from ggufsm.reference.model.gguf_file import open_gguf
    from ggufsm.reference.model.registry import resolve

    shapes = []
    for label, name in MODELS:
        with open_gguf(resolve(name, pull=True)) as gguf_file:
            shapes += shapes_of(label, gguf_file)
    return shapes


@dataclass
class DecodeCell:
    model: str
    matrix: str
    qtype: str
    rows: int
    cols: int
    layout: str  # "Rows8" or "file"
    weight_bytes: int
    gbs: list[float]  # per round
    read_gbs: list[float]  # the read probe around each round (median of its samples)
    in_cache_gbs: list[float] = field(default_factory=list)  # per round, one copy called again and again (if it fits)
    thread_gbs: list[float] = field(default_factory=list)  # per round, in cache on one thread: the fastest call
    threads: int = 1

    @property
    def headroom(self) -> float | None:
        """The one-thread in-cache rate times the threads over the read probe (median of the rounds' pairs)."""
        if not self.thread_gbs:
            return None
        return float(np.median(self.threads * np.asarray(self.thread_gbs) / np.asarray(self.read_gbs)))

    @property
    def share(self) -> float:
        return float(np.median(np.asarray(self.gbs) / np.asarray(self.read_gbs)))


def on_small_pages(a: np.ndarray) -> np.ndarray:
    """A copy of `a` in an anonymous map (4 KiB pages where THP is 'madvise'), as the model's file map holds it."""
    buffer = mmap.mmap(-1, a.nbytes)
    copy = np.frombuffer(buffer, dtype=np.uint8).reshape(a.shape)
    copy[...] = a
    return copy


def measure(pool, threads: int, repeat: int, stream_bytes: int, probe, record=None) -> list[DecodeCell]:
    from ggufsm._core import kernels
    from ggufsm.reference.bench.quant_blocks import random_weights

    rng = np.random.default_rng(0)
    one_thread = kernels.ThreadPool(1)
    cells = []
    for model, matrix, tname, rows, cols in decode_shapes():
        qtype = GGMLQuantizationType[tname]
        weights = random_weights(qtype, rows, cols, rng)
        x = rng.standard_normal(cols).astype(np.float32)
        # The Q8_0 output is repacked after the first pass (cpp/forward/output_repack.h): a decode step reads
        # it in the Rows8 layout from then on.
        output_repacked = matrix.startswith("output") and qtype == GGMLQuantizationType.Q8_0 and rows % 8 == 0
        repacked = bool(kernels.repackable(int(qtype), rows)) or output_repacked
        # Enough copies to exceed the last-level cache: every call streams its weights from memory.
        copies = [on_small_pages(weights) for _ in range(max(1, -(-stream_bytes // weights.nbytes)))]
        cell = DecodeCell(model, matrix, tname, rows, cols, "Rows8" if repacked else "file", weights.nbytes, [], [],
                          threads=threads)
        for _ in range(repeat):
            seconds, beside = probe.around(
                lambda copies=copies, qtype=qtype, rows=rows, cols=cols, x=x, repacked=repacked:
                kernels.matvec_seconds(int(qtype), copies, rows, cols, x, 1, pool, repacked=repacked), pool)
            cell.gbs.append(weights.nbytes / seconds / 1e9)
            cell.read_gbs.append(beside.median)
            if weights.nbytes <= IN_CACHE_BYTES:
                # The same copy over and over: the kernel's own rate with the memory out of the way.
                hot = kernels.matvec_seconds(int(qtype), copies[:1], rows, cols, x, IN_CACHE_CALLS, pool, repacked=repacked)
                cell.in_cache_gbs.append(weights.nbytes / hot / 1e9)
                alone = kernels.matvec_seconds(int(qtype), copies[:1], rows, cols, x, ONE_THREAD_CALLS, one_thread,
                                               repacked=repacked)
                cell.thread_gbs.append(weights.nbytes / alone / 1e9)
        del copies
        if record is not None:
            name = f"decode {model} {matrix} {tname} {cell.layout} [{rows} x {cols}] {threads}T"
            for value, read in zip(cell.gbs, cell.read_gbs, strict=True):
                record.sample(name, value, "GB/s", type=tname, matrix=matrix, threads=threads)
                record.limit(f"read bandwidth around {name}", read, "GB/s")
            record.compare(f"{name} / read bandwidth", name, f"read bandwidth around {name}",
                           how="each round's GB/s over the median of the read probe's samples right before and after it")
            for value in cell.thread_gbs:
                record.sample(f"{name} in cache, one thread", value, "GB/s", type=tname, matrix=matrix, threads=1,
                              how=f"fastest of {ONE_THREAD_CALLS} calls on the same copy")
        cells.append(cell)
    return cells


def render_markdown(cells: list[DecodeCell], threads: int) -> str:
    lines = [
        f"Decode products alone (one activation row, {threads} thread{'s' if threads > 1 else ''}, weights streamed "
        "from memory in the layout the model loads; file layout on 4 KiB pages). GB/s: median (range) of the rounds; "
        "share: median of each round over the read probe sampled around it. In cache: the same copy called again and "
        f"again (best of {IN_CACHE_CALLS}, each round; matrices up to {IN_CACHE_BYTES >> 20} MiB): the kernel's own "
        "rate, which a product streaming at the memory's rate needs to be well above. A thread: in cache on one "
        f"thread, the fastest of {ONE_THREAD_CALLS} calls (median of the rounds); headroom: that times {threads} over "
        "the read probe (reference/bench/decode_kernels.py).",
        "",
        "| model | matrix | type | layout | [rows x cols] | MiB | GB/s | read GB/s | share of the read bandwidth | "
        "in cache GB/s | in cache GB/s a thread | headroom |",
        "| --- | --- | --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for c in cells:
        lines.append(f"| {c.model} | {c.matrix} | {c.qtype} | {c.layout} | [{c.rows} x {c.cols}] | "
                     f"{c.weight_bytes / 2**20:.2f} | {np.median(c.gbs):.1f} ({min(c.gbs):.1f}-{max(c.gbs):.1f}) | "
                     f"{np.median(c.read_gbs):.1f} | {c.share:.0%} | "
                     + (f"{np.median(c.in_cache_gbs):.1f} |" if c.in_cache_gbs else "- |")
                     + (f" {np.median(c.thread_gbs):.1f} | {c.headroom:.2f} |" if c.headroom is not None else " - | - |"))
    return "\n".join(lines) + "\n"
