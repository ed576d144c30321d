"""The machine's two limits, measured at the moment a figure is taken, for the tables that print a figure beside them:
the read bandwidth (a streaming sum over 512 MiB, cpp/bench/measure.h) and the int8 dot-product peak (the AVX2
register-only loop of `ggufsm bench kernels`, cpp/bench/int8_peak.h), at the same thread count."""

from __future__ import annotations

BANDWIDTH_BUFFER = 512 << 20
PEAK_ITERATIONS = 1 << 21


class Limits:
    """Samples both limits on demand; keeps every sample, so a table can give the best and the range."""

    def __init__(self, threads: int):
        from ggufsm._core import kernels

        self._kernels = kernels
        self.pool = kernels.ThreadPool(threads)
        self._probe = kernels.ReadBandwidthProbe(BANDWIDTH_BUFFER, self.pool)
        self.bandwidth_gbs: list[float] = []
        self.int8_gops: list[float] = []

    def sample(self) -> tuple[float, float]:
        """(read GB/s, int8 GOP/s) now."""
        gbs = self._probe.best_gbs(1, self.pool)
        gops, _checksum = self._kernels.int8_peak("avx2", PEAK_ITERATIONS, 1, self.pool)
        self.bandwidth_gbs.append(gbs)
        self.int8_gops.append(gops)
        return gbs, gops

    def text(self) -> str:
        bw, peak = self.bandwidth_gbs, self.int8_gops
        if not bw:
            return "limits not sampled"
        return (f"read bandwidth {max(bw):.1f} GB/s best ({min(bw):.1f}-{max(bw):.1f}), "
                f"int8 peak (AVX2) {max(peak):.0f} GOP/s best ({min(peak):.0f}-{max(peak):.0f}), sampled {len(bw)} times beside the runs")
