"""Whether a product's weight stream and its arithmetic overlap: one repacked matrix per shape, per byte,
streamed from memory against in cache, beside the read bandwidth, for each activation count and thread count.

    .venv/bin/python tools/stream_overlap.py [--shapes 1536x576,576x1536] [--type Q4_1] [--m 1,4]
                                             [--threads 1,2] [--rounds 6] [--stream-mib 48]

Streamed: copies of the matrix filling --stream-mib (above the 32 MiB L3), each read once a round, as a decode
step reads its matrices (kernels.matvec_seconds, best of 40 rounds a call). In cache: one copy, called again
and again (best of 400). Read: the read probe (bench/measure.h) on the same threads. Every figure is the
fastest over --rounds interleaved rounds, the measure least moved by a loaded machine. If the two took turns,
streamed would be 1 / (1 / in cache + 1 / read) (`turns`); if they overlapped, min(in cache, read).
"""

from __future__ import annotations

import argparse

import numpy as np
from gguf.constants import GGMLQuantizationType

from ggufsm._core import kernels
from ggufsm.reference.bench.quant_blocks import random_weights

STREAMED_ROUNDS = 40
IN_CACHE_CALLS = 400


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shapes", default="1536x576,576x1536", help="ROWSxCOLS,... (SmolLM2's gate/up and down)")
    parser.add_argument("--type", default="Q4_1", help="a repackable GGML type")
    parser.add_argument("--m", default="1,4", help="activation rows (sessions in a step)")
    parser.add_argument("--threads", default="1,2")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--stream-mib", type=int, default=48)
    args = parser.parse_args()
    qtype = GGMLQuantizationType[args.type]
    counts = [int(m) for m in args.m.split(",")]
    pools = {t: kernels.ThreadPool(t) for t in (int(t) for t in args.threads.split(","))}
    rng = np.random.default_rng(0)
    read = dict.fromkeys(pools, 0.0)
    for shape in args.shapes.split(","):
        rows, cols = (int(v) for v in shape.split("x"))
        weights = random_weights(qtype, rows, cols, rng)
        copies = [weights.copy() for _ in range(-(-(args.stream_mib << 20) // weights.nbytes))]
        xs = {m: rng.standard_normal((m, cols)).astype(np.float32) for m in counts}
        best: dict[tuple[int, int, str], float] = {}
        for _ in range(args.rounds):
            for threads, pool in pools.items():
                for m in counts:
                    for way, chosen, calls in (("streamed", copies, STREAMED_ROUNDS), ("in cache", copies[:1], IN_CACHE_CALLS)):
                        seconds = kernels.matvec_seconds(int(qtype), chosen, rows, cols, xs[m], calls, pool, repacked=True)
                        best[threads, m, way] = min(best.get((threads, m, way), float("inf")), seconds)
                read[threads] = max(read[threads], kernels.read_bandwidth_gbs(64 << 20, 8, pool))
        for threads in pools:
            for m in counts:
                streamed, hot = (weights.nbytes / best[threads, m, way] / 1e9 for way in ("streamed", "in cache"))
                turns = 1 / (1 / hot + 1 / read[threads])
                print(f"{args.type} [{rows} x {cols}] {threads}T m={m}: streamed {streamed:.1f} GB/s, in cache {hot:.1f}, "
                      f"read {read[threads]:.1f}, turns {turns:.1f}, streamed / min(in cache, read) "
                      f"{streamed / min(hot, read[threads]):.2f}", flush=True)


if __name__ == "__main__":
    main()
