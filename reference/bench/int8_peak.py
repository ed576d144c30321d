"""The prefill half of `ggufsm bench kernels`: each prefill kernel's GOP/s beside the measured int8 peak.

A prefill product y [n, rows] = x [n, cols] . W^T does rows x cols x n int8
multiply-adds (2 ops each), on weights that stay in cache: it is bound by the
arithmetic, not by memory. The ceiling is the machine's int8 dot-product rate,
measured here (`_core.kernels.int8_peak`, cpp/bench/int8_peak.h) with the very
instruction sequence the AVX2 kernels run (vpmaddubsw + vpmaddwd + vpaddd) in a
loop whose operands never leave the registers, on every thread of the pool at
once. Where the CPU has AVX-VNNI or AVX512-VNNI, their vpdpbusd loops are
measured too (chosen at run time); the share is always taken against the AVX2
loop, the one every x86-64-v3 machine runs, and the VNNI peaks stand beside it.

Each product is timed on both weight layouts where the type has a repacked one:
"Rows8" (eight rows interleaved at load, cpp/kernels/repack.h: what a loaded model
runs) and "file" (the file's row-major blocks, the kernels before the repack).

Pairing, as for the mat-vecs: in each pass, right before each kernel cell, the
AVX2 peak loop runs at the same thread count, and a cell's share is the median
over passes of its GOP/s over the peak sampled just before it, so a moment when
the other tenants of the two cores take cycles lowers both alike. The reported
peaks are the best samples.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from gguf.constants import GGMLQuantizationType

# The real models' prefill products (their largest per layer): [rows x cols].
PREFILL_SHAPES: tuple[tuple[str, int, int], ...] = (
    ("SmolLM2 ffn_gate/up", 1536, 576),
    ("SmolLM2 ffn_down", 576, 1536),
    ("Gemma-3 ffn_gate/up", 2048, 640),
    ("Gemma-3 ffn_down", 640, 2048),
)
# The types the two models' big layers use, and Q4_0 (llama.cpp's repacked reference type).
PREFILL_TYPES = ("Q4_0", "Q4_1", "Q5_0", "Q8_0", "Q4_K", "Q6_K")
# About 10-40 ms of loop per thread on a 3 GHz core: long against the timer and a pool hand-off.
PEAK_ITERATIONS = 1 << 21
BASELINE_ISA = "avx2"


@dataclass
class PrefillCell:
    qtype: str
    matrix: str
    rows: int
    cols: int
    layout: str              # "Rows8" (repacked at load) or "file"
    gops: dict[int, float]   # threads -> best GOP/s over the passes
    share: dict[int, float]  # threads -> median over passes of GOP/s / the AVX2 peak of that pass


def gop(rows: int, cols: int, n: int) -> float:
    """Operations of one product, in units of 1e9 (2 per multiply-add)."""
    return 2.0 * rows * cols * n / 1e9


def measure(types, threads, pools, repeat: int, n_rows: int,
            record=None) -> tuple[dict[str, dict[int, float]], list[PrefillCell]]:
    """(peaks: isa -> threads -> best GOP/s, cells). Each pass: per thread count, every peak loop, then every cell."""
    from ggufsm._core import kernels
    from ggufsm.reference.bench.kernels import fits
    from ggufsm.reference.bench.quant_blocks import random_weights

    isas = kernels.int8_peak_isas()
    rng = np.random.default_rng(1)
    plain = [(GGMLQuantizationType[name], label, rows, cols) for name in types for label, rows, cols in PREFILL_SHAPES
             if fits(GGMLQuantizationType[name], cols)]
    shared = {(q, rows, cols): (random_weights(q, rows, cols, rng), rng.standard_normal((n_rows, cols)).astype(np.float32))
              for q, _, rows, cols in plain}
    matrices = [(q, label, rows, cols, layout) for q, label, rows, cols in plain
                for layout in (("Rows8", "file") if kernels.repackable(int(q), rows) else ("file",))]
    data = [shared[(q, rows, cols)] for q, _, rows, cols, _ in matrices]
    peaks: dict[str, dict[int, list[float]]] = {isa: {t: [] for t in threads} for isa in isas}
    samples: list[dict[int, list[float]]] = [{t: [] for t in threads} for _ in matrices]  # per cell and thread count: GOP/s per pass
    baseline: dict[int, list[float]] = {t: [] for t in threads}  # the AVX2 peak sampled right before each cell, in cell order
    for _ in range(repeat):
        for t in threads:
            for isa in isas:
                gops, _checksum = kernels.int8_peak(isa, PEAK_ITERATIONS, 1, pools[t])
                peaks[isa][t].append(gops)
            for (qtype, _, rows, cols, layout), (w, x), cell in zip(matrices, data, samples, strict=True):
                # The AVX2 peak again right before each cell: its share pairs it with the peak of its own moment.
                if BASELINE_ISA in peaks:
                    gops, _checksum = kernels.int8_peak(BASELINE_ISA, PEAK_ITERATIONS, 1, pools[t])
                    peaks[BASELINE_ISA][t].append(gops)
                baseline[t].append(peaks[BASELINE_ISA][t][-1] if BASELINE_ISA in peaks else float("nan"))
                seconds = kernels.matmul_seconds(int(qtype), w, rows, cols, x, 1, pools[t], repacked=layout == "Rows8")
                cell[t].append(gop(rows, cols, n_rows) / seconds)
    if record is not None:
        record_prefill(record, matrices, samples, baseline, peaks, n_rows)
    cells = []
    for index, ((qtype, label, rows, cols, layout), cell) in enumerate(zip(matrices, samples, strict=True)):
        share = {t: float(np.median(np.asarray(cell[t]) / np.asarray(baseline[t][index::len(matrices)]))) for t in threads}
        cells.append(PrefillCell(qtype.name, label, rows, cols, layout, {t: max(cell[t]) for t in threads}, share))
    return {isa: {t: max(v) for t, v in by_t.items()} for isa, by_t in peaks.items()}, cells


def record_prefill(record, matrices, samples, baseline, peaks, n_rows: int) -> None:
    """Every peak sample, and every pass of every prefill cell beside the AVX2 peak sampled right before it."""
    for isa, by_t in peaks.items():
        for t, values in by_t.items():
            for value in values:
                record.limit(f"int8 peak {isa} {t}T", value, "GOP/s", isa=isa, threads=t)
    for index, ((qtype, label, rows, cols, layout), cell) in enumerate(zip(matrices, samples, strict=True)):
        for t, values in cell.items():
            name = f"prefill {qtype.name} {label} [{rows} x {cols}] {layout} layout x {n_rows} rows {t}T"
            for value, peak in zip(values, baseline[t][index::len(matrices)], strict=True):
                record.sample(name, value, "GOP/s", type=qtype.name, matrix=label, layout=layout, threads=t)
                if BASELINE_ISA in peaks:
                    record.limit(f"{BASELINE_ISA} peak before {name}", peak, "GOP/s")
            if BASELINE_ISA in peaks:
                record.compare(f"{name} / {BASELINE_ISA} peak", name, f"{BASELINE_ISA} peak before {name}",
                               how="each pass's GOP/s over the int8 peak sampled right before it")


def render_markdown(peaks, cells, threads, n_rows: int) -> str:
    per_thread = lambda t: f"{t} thread{'s' if t > 1 else ''}"  # noqa: E731
    lines = [
        "Int8 peak (register-only dot-product loop on every thread at once, best of the passes; "
        "2 ops per u8 x s8 multiply-add): "
        + "; ".join(f"`{isa}` " + ", ".join(f"{by_t[t]:.0f} GOP/s at {per_thread(t)}" for t in threads)
                    for isa, by_t in peaks.items()) + ".",
        "",
    ]
    if not any(isa.endswith("vnni") for isa in peaks):
        lines += ["This CPU has no AVX-VNNI and no AVX512-VNNI: the VNNI peak is unmeasured here.", ""]
    lines += [
        f"Prefill products, {n_rows} activation rows (weights cache-resident; activations quantized outside the "
        f"timing): GOP/s, and the share of the `{BASELINE_ISA}` peak measured in the same pass (median of the passes).",
        "",
        "| type | matrix [rows x cols] | layout | " + " | ".join(f"GOP/s {t}T" for t in threads)
        + " | " + " | ".join(f"{t}T / {BASELINE_ISA} peak" for t in threads) + " |",
        "| --- | --- | --- | " + " | ".join("---:" for _ in range(2 * len(threads))) + " |",
    ]
    for c in cells:
        lines.append(f"| {c.qtype} | {c.matrix} [{c.rows} x {c.cols}] | {c.layout} | "
                     + " | ".join(f"{c.gops[t]:.1f}" for t in threads) + " | "
                     + " | ".join(f"{c.share[t]:.0%}" for t in threads) + " |")
    return "\n".join(lines) + "\n"
