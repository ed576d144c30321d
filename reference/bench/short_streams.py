"""`ggufsm bench kernels --short-streams ROUNDS`: how fast a short stream of cold data reads, against the read probe.

A one-session decode step of SmolLM2 is 30 layers of short products: each member of the walking team streams
100-550 KB of a product's weights, then waits for the small ops between products, then streams the next. The read
probe (reference/bench/limits.py) streams 512 MiB in one go. This measures what the short streams lose: `threads`
threads of their own each read STREAM_BYTES of cold data right after a spin barrier (ReadBandwidthProbe.short_streams,
cpp/bench/measure.h), in both of the probe's reads (a plain sum; software prefetch 4 KiB ahead, as the m=1 kernels
read their weights), and with a lead: each thread first asks for the first LEAD of its stream and spins a while before
the barrier, as a member reads ahead its next share while a small op runs. Cells alternate within each round and each
round has the probe's samples around it at the same thread count. A thread's rate is its own stream's: on a busy
machine the barrier's wall (first start to last end) mostly measures who was descheduled.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field

STREAM_BYTES = (100_000, 200_000, 550_000, 4 << 20)
# (bytes asked for before the barrier, ns spun after asking, how): none, and a read-ahead over a small op's time, asked
# for as the team's read-ahead asks (a prefetch into L1), into L2, or by plain loads (certain to arrive).
LEADS = ((0, 0, "l1"), (64 << 10, 2_000, "l1"), (64 << 10, 10_000, "l1"), (64 << 10, 10_000, "l2"), (64 << 10, 10_000, "load"))
READS = ("sum", "prefetch")
STREAMS_A_CALL = 40  # streams per call (each cold); a call's figure is their median


@dataclass
class StreamCell:
    threads: int
    bytes: int
    read: str
    lead_bytes: int
    lead_ns: int
    lead: str
    thread_s: list[float] = field(default_factory=list)  # every stream's seconds, each thread's own, over the rounds
    probe_gbs: list[float] = field(default_factory=list)  # per round: the probe's median around it

    def gbs(self, quantile: float) -> float:
        """A thread's GB/s at this quantile of its streams' times (0.5: the median stream; 0.1: a fast one)."""
        ordered = sorted(self.thread_s)
        return self.bytes / ordered[min(len(ordered) - 1, int(quantile * len(ordered)))] / 1e9


def measure(pools: dict, rounds: int, probe) -> list[StreamCell]:
    """Every cell once a round (pools: thread count -> pool, for the probe's samples at that count); the streams read
    a buffer of their own, as large as the probe's."""
    from ggufsm._core import kernels
    from ggufsm.reference.bench.limits import BANDWIDTH_BUFFER

    buffer = kernels.ReadBandwidthProbe(BANDWIDTH_BUFFER, pools[max(pools)], True)
    cells = [StreamCell(t, b, read, *lead) for t in pools for b in STREAM_BYTES for read in READS for lead in LEADS
             if read == "prefetch" or lead[0] == 0]
    for _ in range(rounds):
        for cell in cells:
            (_, thread_s), beside = probe.around(
                lambda cell=cell: buffer.short_streams(cell.threads, cell.bytes, cell.read, STREAMS_A_CALL,
                                                       cell.lead_bytes, cell.lead_ns, cell.lead), pools[cell.threads])
            cell.thread_s += thread_s
            cell.probe_gbs.append(beside.median)
    return cells


def render_markdown(cells: list[StreamCell], rounds: int) -> str:
    lines = [f"Short streams of cold data right after a barrier ({rounds} interleaved rounds of {STREAMS_A_CALL} streams "
             "a cell; reference/bench/short_streams.py): a thread's GB/s over its own stream (each thread timed from its "
             "leaving the barrier to its stream's end, so a thread descheduled at the barrier does not count), at the "
             "median stream and at a fast one (the 10th percentile of times); the threads' streams run at once, so at 2 "
             "threads each is a half of the memory's rate. Beside them: the read probe's 512 MiB stream (median of its "
             "samples around the rounds, all threads), the cell's fast rate over the same threads' 4 MiB stream read the "
             "same way with no lead, and over the same stream's with no lead (a lead that arrived whole before the clock would "
             "make a 100 KB stream about 1.7x as fast).",
             "", "| threads | bytes a thread | read | lead | GB/s a thread, median | fast | probe GB/s | fast / 4 MiB's "
             "| fast / no lead's |",
             "| ---: | ---: | --- | --- | ---: | ---: | ---: | ---: | ---: |"]
    plain = {(c.threads, c.bytes, c.read): c for c in cells if c.lead_bytes == 0}
    for c in cells:
        lead = f"{c.lead_bytes >> 10} KiB by {c.lead}, {c.lead_ns / 1000:.0f} us" if c.lead_bytes else "none"
        longest, unled = plain[(c.threads, max(STREAM_BYTES), c.read)], plain[(c.threads, c.bytes, c.read)]
        lines.append(f"| {c.threads} | {c.bytes:,} | {c.read} | {lead} | {c.gbs(0.5):.1f} | {c.gbs(0.1):.1f} | "
                     f"{statistics.median(c.probe_gbs):.1f} | {c.gbs(0.1) / longest.gbs(0.1):.2f} | "
                     f"{c.gbs(0.1) / unled.gbs(0.1):.2f} |")
    return "\n".join(lines) + "\n"
