"""`ggufsm bench kernels`: mat-vec throughput per weight type, beside the machine's read bandwidth.

A decode step is a chain of mat-vecs whose weights come from memory, not
cache, so each cell times y = W x while cycling through copies of W that
together exceed the last-level cache (at least --stream-mib). The figure is
GB/s of weight bytes streamed (1 GB = 1e9 bytes), best of --repeat, timed in
C++ so no Python call overhead is in it. The read bandwidth is the benches'
one read probe (reference/bench/limits.py: a streaming sum over 512 MiB in
2 MiB pages, each sample the faster of a plain pass and a software-prefetched
one) at the same thread count, sampled right before and right after each
pass of a cell. A cell's share of it is the median, over --repeat passes, of
the cell's GB/s divided by the mean of those two samples: this machine's memory bandwidth drifts from
25 to 43 GB/s within minutes (a VM beside other tenants), so a ratio of two
figures taken minutes apart, or of two best-ofs, moved with whichever moment
was luckiest (the same build read 59% and 87% of "the" bandwidth). Paired
samples share their moment; the median drops the odd one. Activations are
quantized once per cell, outside the timing, as a forward pass does.

numpy backs arrays of 4 MiB and more with transparent huge pages; the
small layers' copies may sit on 4 KiB pages, where the hardware prefetchers
restart at every page.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from gguf.constants import GGML_QUANT_SIZES, GGMLQuantizationType

from ggufsm.reference.bench import decode_kernels, int8_peak, short_streams
from ggufsm.reference.bench.int8_peak import PREFILL_TYPES
from ggufsm.reference.bench.limits import ReadProbe, compare_reads

# Matrices [rows, cols] of the real models' layers.
SHAPES: tuple[tuple[str, int, int], ...] = (
    ("SmolLM2 ffn_gate/up", 1536, 576),
    ("SmolLM2 ffn_down", 576, 1536),
    ("SmolLM2 output", 49152, 576),
    ("Gemma-3 ffn_down", 640, 2048),
    ("Gemma-3 output", 262144, 640),
)
# The types whose 2-thread throughput should reach TARGET of the read bandwidth.
TARGET_TYPES = ("Q4_1", "Q8_0", "Q4_K", "Q5_0", "Q6_K")
TARGET = 0.70
# Row tiles of a 1536-row matrix: the size of a decode step's smallest parallel jobs.
HANDOFF_ITEMS = 96


@dataclass
class Cell:
    qtype: str
    matrix: str
    rows: int
    cols: int
    weight_bytes: int
    gbs: dict[int, float]  # threads -> GB/s, best of the rounds
    read_gbs: dict[int, float]  # threads -> read bandwidth, median of the samples paired with the rounds
    share: dict[int, float]  # threads -> median over rounds of (GB/s / the read bandwidth sampled after it)


def register_bench(bench_commands) -> None:
    parser = bench_commands.add_parser(
        "kernels", help="mat-vec GB/s per weight type beside the read bandwidth; prefill GOP/s beside the int8 peak")
    parser.add_argument("--types", default=",".join(TARGET_TYPES),
                        help="comma-separated ggml types, or 'all' (default: %(default)s)")
    parser.add_argument("--threads", default="1,2", help="comma-separated thread counts (default 1,2)")
    parser.add_argument("--repeat", type=int, default=5,
                        help="passes over all cells, one timing of each per pass (default 5)")
    parser.add_argument("--stream-mib", type=int, default=256,
                        help="least total size of the weight copies each cell cycles through (default 256)")
    parser.add_argument("--prefill-rows", type=int, default=512,
                        help="activation rows of the prefill products timed against the int8 peak; 0 skips them "
                             "(default %(default)s)")
    parser.add_argument("--prefill-types", default=",".join(PREFILL_TYPES),
                        help="comma-separated ggml types of the prefill products (default: %(default)s)")
    parser.add_argument("--decode-shapes", action="store_true",
                        help="also time every product of a SmolLM2 and a Gemma 3 decode step alone (one activation "
                             "row, the model's layout) at the most threads (reference/bench/decode_kernels.py)")
    parser.add_argument("--probe-reads", type=int, default=0, metavar="ROUNDS",
                        help="also compare the read probe's reads (plain sum, software prefetch) on 2 MiB and 4 KiB "
                             "pages, ROUNDS interleaved rounds (reference/bench/limits.py, compare_reads)")
    parser.add_argument("--short-streams", type=int, default=0, metavar="ROUNDS",
                        help="also time short streams of cold data (100 KB-4 MiB a thread, a decode step's product "
                             "shares) against the read probe, ROUNDS interleaved rounds (reference/bench/short_streams.py)")
    parser.add_argument("--isa", default=None, help="force a kernel variant (scalar, avx2, avx512)")
    parser.add_argument("--markdown", type=Path, default=None, help="also write the table as Markdown here")
    parser.set_defaults(handler=run)


def run(args) -> int:
    from ggufsm._core import kernels
    from ggufsm.reference.bench.quant_blocks import KERNEL_TYPES

    if args.isa:
        kernels.force_isa(args.isa)
    names = [t.name for t in KERNEL_TYPES] if args.types == "all" else [n.strip() for n in args.types.split(",")]
    threads = [int(t) for t in args.threads.split(",")]
    pools = {t: kernels.ThreadPool(t) for t in threads}  # one per thread count for the whole run
    load_before = os.getloadavg()[0]
    probe = ReadProbe(pools[max(threads)], around=1)
    bandwidth = {t: probe.best(args.repeat, pools[t]) for t in threads}
    handoff = {t: kernels.parallel_for_overhead_seconds(HANDOFF_ITEMS, 2000, args.repeat, pools[t]) for t in threads}
    for t in threads:
        args.record.limit(f"read bandwidth before the cells {t}T", bandwidth[t], "GB/s", best_of=args.repeat)
        args.record.sample(f"pool handoff {t}T", handoff[t] * 1e6, "us", better="lower", items=HANDOFF_ITEMS)
    cells = measure_all([(GGMLQuantizationType[name], label, rows, cols) for name in names for label, rows, cols in SHAPES
                         if fits(GGMLQuantizationType[name], cols)], pools, args.repeat, args.stream_mib << 20, probe,
                        args.record)
    command = " ".join(["ggufsm", "bench", "kernels"] + sys.argv[3:])
    table = render_markdown(cells, bandwidth, handoff, threads, kernels.active_isa(), command,
                            (load_before, os.getloadavg()[0]), probe)
    if args.decode_shapes:
        most = max(threads)
        decode = decode_kernels.measure(pools[most], most, args.repeat, args.stream_mib << 20, probe, args.record)
        table += "\n" + decode_kernels.render_markdown(decode, most)
    if args.probe_reads > 0:
        table += "\n" + compare_reads(pools, args.probe_reads, args.record)
    if args.short_streams > 0:
        table += "\n" + short_streams.render_markdown(short_streams.measure(pools, args.short_streams, probe), args.short_streams)
    if args.prefill_rows > 0:
        peaks, prefill = int8_peak.measure([n.strip() for n in args.prefill_types.split(",")], threads, pools,
                                           args.repeat, args.prefill_rows, args.record)
        table += "\n" + int8_peak.render_markdown(peaks, prefill, threads, args.prefill_rows)
    print(table)
    if args.markdown:
        args.markdown.write_text(table, encoding="utf-8")
    return 0


def fits(qtype: GGMLQuantizationType, cols: int) -> bool:
    return cols % GGML_QUANT_SIZES[qtype][0] == 0


def measure_all(matrices, pools, repeat, stream_bytes, probe, record=None) -> list[Cell]:
    """`repeat` passes over every matrix, one round per thread count (pools: count -> its pool) each:
    a round times the mat-vec over every copy once, between two samples of the read probe. Passes
    rather than one cell's rounds back to back, so that each cell's samples spread over the whole run
    and a burst of bandwidth (here they last about half a second) lands in one of them, not in all."""
    from ggufsm._core import kernels
    from ggufsm.reference.bench.quant_blocks import random_weights

    threads = list(pools)

    rng = np.random.default_rng(0)
    bases = [(random_weights(qtype, rows, cols, rng), rng.standard_normal(cols).astype(np.float32))
             for qtype, _, rows, cols in matrices]
    samples = [{t: ([], []) for t in threads} for _ in matrices]  # per cell, per thread count: (GB/s, read GB/s)
    for _ in range(repeat):
        for (qtype, _, rows, cols), (weights, x), cell_samples in zip(matrices, bases, samples, strict=True):
            # Fresh copies each pass: only one cell's stream (stream_bytes) is resident at a time.
            copies = [weights] + [weights.copy() for _ in range(max(0, -(-stream_bytes // weights.nbytes) - 1))]
            for t in threads:
                seconds, beside = probe.around(
                    lambda t=t, copies=copies, qtype=qtype, rows=rows, cols=cols, x=x:
                    kernels.matvec_seconds(int(qtype), copies, rows, cols, x, 1, pools[t]), pools[t])
                cell_samples[t][0].append(weights.nbytes / seconds / 1e9)
                cell_samples[t][1].append(beside.median)
            del copies
    if record is not None:
        record_cells(record, matrices, samples)
    cells = []
    for (qtype, label, rows, cols), (weights, _), cell_samples in zip(matrices, bases, samples, strict=True):
        gbs = {t: max(cell_samples[t][0]) for t in threads}
        read_gbs = {t: float(np.median(cell_samples[t][1])) for t in threads}
        share = {t: paired_share(*cell_samples[t]) for t in threads}
        cells.append(Cell(qtype.name, label, rows, cols, weights.nbytes, gbs, read_gbs, share))
    return cells


def record_cells(record, matrices, samples) -> None:
    """Every pass of every cell: its GB/s, the read bandwidth sampled around it, and the share (the pairs)."""
    for (qtype, label, rows, cols), cell_samples in zip(matrices, samples, strict=True):
        for t, (gbs, read_gbs) in cell_samples.items():
            name = f"{qtype.name} {label} [{rows} x {cols}] {t}T"
            for value, read in zip(gbs, read_gbs, strict=True):
                record.sample(name, value, "GB/s", type=qtype.name, matrix=label, threads=t)
                record.limit(f"read bandwidth around {name}", read, "GB/s")
            record.compare(f"{name} / read bandwidth", name, f"read bandwidth around {name}",
                           how="each pass's GB/s over the median of the read probe's samples right before and after it")


def paired_share(cell_gbs: list[float], read_gbs: list[float]) -> float:
    """Median over rounds of a cell's GB/s over the read bandwidth sampled beside it."""
    return float(np.median(np.asarray(cell_gbs) / np.asarray(read_gbs)))


def render_markdown(cells, bandwidth, handoff, threads, isa, command, load, probe) -> str:
    most = max(threads)
    lines = [
        f"Kernel variant `{isa}`, {os.cpu_count()} cores, load average {load[0]:.2f} before / {load[1]:.2f} after. "
        f"Command: `{command}`",
        "",
        "Read bandwidth before the cells (best sample): "
        + ", ".join(f"{bandwidth[t]:.1f} GB/s at {t} thread{'s' if t > 1 else ''}" for t in threads)
        + f"; each cell's share is the median of its rounds' GB/s over the bandwidth sampled around"
        f" each (column 'read {most}T': their median). The {probe.describe()}.",
        "",
        f"Thread pool handoff (an empty job over {HANDOFF_ITEMS} items, 2000 calls back to back): "
        + ", ".join(f"{handoff[t] * 1e6:.2f} us at {t} thread{'s' if t > 1 else ''}" for t in threads) + " per call.",
        "",
        "| type | matrix [rows x cols] | MiB | " + " | ".join(f"GB/s {t}T" for t in threads)
        + f" | read {most}T | {most}T / read bandwidth (median of pairs) |",
        "| --- | --- | ---: | " + " | ".join("---:" for _ in threads) + " | ---: | ---: |",
    ]
    for c in cells:
        share = c.share[most]
        flag = " (below target)" if c.qtype in TARGET_TYPES and share < TARGET else ""
        lines.append(f"| {c.qtype} | {c.matrix} [{c.rows} x {c.cols}] | {c.weight_bytes / 2**20:.1f} | "
                     + " | ".join(f"{c.gbs[t]:.1f}" for t in threads) + f" | {c.read_gbs[most]:.1f} | {share:.0%}{flag} |")
    return "\n".join(lines) + "\n"
