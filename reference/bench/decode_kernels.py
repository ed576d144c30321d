"""The decode half of `ggufsm bench kernels --decode-shapes`: every product of a decode step of both models, alone.

Each matrix of a SmolLM2 and a Gemma 3 decode step (its real type and shape) is timed as one activation row
(m = 1) against weights streamed from memory, in the layout a loaded model gives it: Rows8 where the type is
repacked at load (cpp/kernels/repack.h), the file's layout otherwise (the Q8_0 output matrix, tied to the
embedding, and Gemma 3's Q8_0 wv). File-layout copies sit on 4 KiB pages (an anonymous map, as the model's
file map is), not on numpy's huge-page-advised heap. Each round is paired with the streaming sum
(`ReadBandwidthProbe`, a plain read loop) sampled right after it, as `measure_all` does; a cell's share is the
median of the pairs. The figures say which kernels stream below the memory rate, and by how much.
"""

from __future__ import annotations

import mmap
from dataclasses import dataclass

import numpy as np
from gguf.constants import GGMLQuantizationType

# (model, matrix, type, rows, cols) of each product of a decode step (the files in the model registry).
DECODE_SHAPES: tuple[tuple[str, str, str, int, int], ...] = (
    ("SmolLM2", "attn_q/attn_output", "Q4_1", 576, 576),
    ("SmolLM2", "attn_k/attn_v", "Q4_1", 192, 576),
    ("SmolLM2", "ffn_gate/ffn_up", "Q4_1", 1536, 576),
    ("SmolLM2", "ffn_down", "Q4_1", 576, 1536),
    ("SmolLM2", "output (tied)", "Q8_0", 49152, 576),
    ("Gemma 3", "attn_q", "Q5_0", 1024, 640),
    ("Gemma 3", "attn_k", "Q5_0", 256, 640),
    ("Gemma 3", "attn_v", "Q8_0", 256, 640),
    ("Gemma 3", "attn_output", "Q4_K", 640, 1024),
    ("Gemma 3", "ffn_gate/ffn_up", "Q5_0", 2048, 640),
    ("Gemma 3", "ffn_down", "Q6_K", 640, 2048),
    ("Gemma 3", "output (tied)", "Q8_0", 262144, 640),
)


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
    read_gbs: list[float]  # the streaming sum right after each round

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
    cells = []
    for model, matrix, tname, rows, cols in DECODE_SHAPES:
        qtype = GGMLQuantizationType[tname]
        weights = random_weights(qtype, rows, cols, rng)
        x = rng.standard_normal(cols).astype(np.float32)
        repacked = bool(kernels.repackable(int(qtype), rows))
        # Enough copies to exceed the last-level cache: every call streams its weights from memory.
        copies = [on_small_pages(weights) for _ in range(max(1, -(-stream_bytes // weights.nbytes)))]
        cell = DecodeCell(model, matrix, tname, rows, cols, "Rows8" if repacked else "file", weights.nbytes, [], [])
        for _ in range(repeat):
            seconds = kernels.matvec_seconds(int(qtype), copies, rows, cols, x, 1, pool, repacked=repacked)
            cell.gbs.append(weights.nbytes / seconds / 1e9)
            cell.read_gbs.append(probe.best_gbs(1, pool))
        del copies
        if record is not None:
            name = f"decode {model} {matrix} {tname} {cell.layout} [{rows} x {cols}] {threads}T"
            for value, read in zip(cell.gbs, cell.read_gbs, strict=True):
                record.sample(name, value, "GB/s", type=tname, matrix=matrix, threads=threads)
                record.limit(f"read bandwidth after {name}", read, "GB/s")
            record.compare(f"{name} / read bandwidth", name, f"read bandwidth after {name}",
                           how="each round's GB/s over the streaming sum sampled right after it")
        cells.append(cell)
    return cells


def render_markdown(cells: list[DecodeCell], threads: int) -> str:
    lines = [
        f"Decode products alone (one activation row, {threads} thread{'s' if threads > 1 else ''}, weights streamed "
        "from memory in the layout the model loads; file layout on 4 KiB pages). GB/s: median (range) of the rounds; "
        "share: median of each round over the streaming sum sampled right after it.",
        "",
        "| model | matrix | type | layout | [rows x cols] | MiB | GB/s | read GB/s | share of the read bandwidth |",
        "| --- | --- | --- | --- | --- | ---: | ---: | ---: | ---: |",
    ]
    for c in cells:
        lines.append(f"| {c.model} | {c.matrix} | {c.qtype} | {c.layout} | [{c.rows} x {c.cols}] | "
                     f"{c.weight_bytes / 2**20:.2f} | {np.median(c.gbs):.1f} ({min(c.gbs):.1f}-{max(c.gbs):.1f}) | "
                     f"{np.median(c.read_gbs):.1f} | {c.share:.0%} |")
    return "\n".join(lines) + "\n"
