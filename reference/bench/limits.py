"""The machine's two limits, measured at the moment a figure is taken, for the tables that print a figure beside them:
the read bandwidth (`ReadProbe`: a streaming sum over 512 MiB, cpp/bench/measure.h) and the int8 dot-product peak
(the AVX2 register-only loop of `ggufsm bench kernels`, cpp/bench/int8_peak.h), at the same thread count.

The read bandwidth is the one probe of every bench that holds a figure to it (`bench kernels`, its `--decode-shapes`,
`bench decode`, `bench decode --long-context`): the limit is the fastest rate a reader reaches, so each sample reads
the buffer twice, once as a plain sum (the hardware prefetchers alone) and once with a software prefetch of each line
4 KiB ahead (as the m=1 kernels read their weights), and keeps the faster; the buffer is advised MADV_HUGEPAGE, as the
weights' copy and the repacked matrices are (the probe of sessions 1-5 came from new[] and, THP being 'madvise' on this
machine, sat on 4 KiB pages, where the hardware prefetchers restart at every page: slower than what the kernels read).
A timed run gets `around` samples right before it and as many right after, and is held to their median (the range
goes in the table): one sample after the run, as the benches took until session 5, scattered 21-30 GB/s between
rounds, so a share moved with the luck of one draw.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

BANDWIDTH_BUFFER = 512 << 20
PEAK_ITERATIONS = 1 << 21
SAMPLES_AROUND = 3  # probe samples right before and right after each timed run
READS = ("sum", "prefetch")
T = TypeVar("T")


@dataclass
class Beside:
    """The probe's samples around one timed run: each sample's passes per read, the limit (fastest pass) per sample."""

    passes: list[dict[str, float]] = field(default_factory=list)  # per sample: read -> GB/s, in the order taken
    before: int = 0  # how many of them came before the run
    old: float | None = None  # the old measure, if taken (ReadProbe(old_measure=True))

    @property
    def samples(self) -> list[float]:
        return [max(p.values()) for p in self.passes]

    @property
    def median(self) -> float:
        return float(statistics.median(self.samples))

    @property
    def low(self) -> float:
        return min(self.samples)

    @property
    def high(self) -> float:
        return max(self.samples)

    @property
    def old_measure(self) -> float:
        """What the benches of sessions 1-5 held a run to: one plain-sum pass right after it, over a buffer on
        4 KiB pages (their buffer came from new[]; THP is 'madvise' here, so it never got 2 MiB pages)."""
        if self.old is None:
            raise ValueError("the old measure was not taken (ReadProbe(old_measure=True))")
        return self.old


class ReadProbe:
    """The read bandwidth beside timed runs (module docstring): `around(fn)` runs fn between two sets of samples."""

    def __init__(self, pool, around: int = SAMPLES_AROUND, old_measure: bool = False):
        from ggufsm._core import kernels

        self.pool = pool
        self.around_count = around
        self._probe = kernels.ReadBandwidthProbe(BANDWIDTH_BUFFER, pool, True)
        # The probe of sessions 1-5, for reporting both measures side by side: its own buffer on 4 KiB pages.
        self._old = kernels.ReadBandwidthProbe(BANDWIDTH_BUFFER, pool, False) if old_measure else None
        self.every: list[Beside] = []

    def sample(self, pool=None) -> dict[str, float]:
        """One sample now: one pass per read (READS), GB/s each."""
        return {read: self._probe.pass_gbs(read, pool or self.pool) for read in READS}

    def best(self, samples: int, pool=None) -> float:
        """The fastest of `samples` samples now."""
        return max(max(self.sample(pool).values()) for _ in range(samples))

    def around(self, fn: Callable[[], T], pool=None) -> tuple[T, Beside]:
        beside = Beside(before=self.around_count)
        beside.passes += [self.sample(pool) for _ in range(self.around_count)]
        result = fn()
        if self._old is not None:  # first, as the old benches took it: right after the run
            beside.old = self._old.pass_gbs("sum", pool or self.pool)
        beside.passes += [self.sample(pool) for _ in range(self.around_count)]
        self.every.append(beside)
        return result, beside

    @property
    def huge_page_share(self) -> float:
        return self._probe.huge_page_bytes / BANDWIDTH_BUFFER

    def describe(self) -> str:
        """How the probe reads, for the bench's output."""
        text = (f"read bandwidth: a streaming sum over {BANDWIDTH_BUFFER >> 20} MiB "
                f"({self.huge_page_share:.0%} in 2 MiB pages), each sample the faster of a plain pass and one with "
                f"software prefetch 4 KiB ahead; {self.around_count} samples right before and {self.around_count} "
                "right after each timed run, the run held to their median")
        every = [s for b in self.every for s in b.samples]
        if every:
            text += f" (all {len(every)} samples: {min(every):.1f}-{max(every):.1f} GB/s, median {statistics.median(every):.1f})"
        return text


def compare_reads(pools: dict, rounds: int, record=None) -> str:
    """The probe's choice, measured: every read (READS) on a 2 MiB-page and a 4 KiB-page buffer, at each thread count
    (pools: count -> pool), interleaved round by round; a Markdown table of GB/s, median (range), and how often each
    read was the faster on the buffer the probe uses."""
    from ggufsm._core import kernels

    most = max(pools)
    buffers = {"2 MiB pages": kernels.ReadBandwidthProbe(BANDWIDTH_BUFFER, pools[most], True),
               "4 KiB pages": kernels.ReadBandwidthProbe(BANDWIDTH_BUFFER, pools[most], False)}
    runs: dict[tuple[int, str, str], list[float]] = {}
    for _ in range(rounds):
        for t, pool in pools.items():
            for placement, buffer in buffers.items():
                for read in READS:
                    runs.setdefault((t, placement, read), []).append(buffer.pass_gbs(read, pool))
    lines = [f"The read probe's choice ({rounds} interleaved rounds, one pass each): GB/s, median (range).", "",
             "| threads | buffer | read | GB/s | faster than the other read, rounds |", "| ---: | --- | --- | ---: | ---: |"]
    for (t, placement, read), values in runs.items():
        other = runs[(t, placement, next(r for r in READS if r != read))]
        wins = sum(a > b for a, b in zip(values, other, strict=True))
        lines.append(f"| {t} | {placement} ({buffers[placement].huge_page_bytes / BANDWIDTH_BUFFER:.0%} in 2 MiB pages) | "
                     f"{read} | {statistics.median(values):.1f} ({min(values):.1f}-{max(values):.1f}) | {wins}/{rounds} |")
        if record is not None:
            for value in values:
                record.limit(f"probe {read} on {placement} {t}T", value, "GB/s")
    return "\n".join(lines) + "\n"


def record_beside(record, name: str, beside: Beside) -> None:
    """A run's limit in the record: the median of its samples (paired with the run), and every sample beside it."""
    record.limit(name, beside.median, "GB/s", samples=len(beside.samples))
    for value in beside.samples:
        record.limit(f"{name}, every sample", value, "GB/s")
    if beside.old is not None:
        record.limit(f"{name}, old measure (one plain sum after)", beside.old_measure, "GB/s")


class Limits:
    """Samples both limits on demand; keeps every sample, so a table can give the best and the range."""

    def __init__(self, threads: int):
        from ggufsm._core import kernels

        self._kernels = kernels
        self.pool = kernels.ThreadPool(threads)
        self.probe = ReadProbe(self.pool, old_measure=True)
        self.int8_gops: list[float] = []

    def around(self, fn: Callable[[], T]) -> tuple[T, Beside]:
        """fn() between the read probe's samples (ReadProbe.around)."""
        return self.probe.around(fn)

    def sample_peak(self) -> float:
        """int8 GOP/s now."""
        gops, _checksum = self._kernels.int8_peak("avx2", PEAK_ITERATIONS, 1, self.pool)
        self.int8_gops.append(gops)
        return gops

    def text(self) -> str:
        peak = self.int8_gops
        bw = [s for b in self.probe.every for s in b.samples]
        if not bw:
            return "limits not sampled"
        text = self.probe.describe()
        if peak:
            text += f"; int8 peak (AVX2) {max(peak):.0f} GOP/s best ({min(peak):.0f}-{max(peak):.0f}), sampled {len(peak)} times"
        return text
