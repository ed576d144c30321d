"""`ggufsm bench ...`: benchmarks. Each kind lives in its own module with
register_bench(bench_subparsers); results are printed and can be written to docs/."""

from __future__ import annotations

import importlib

from ggufsm.reference.bench import runtime as bench_runtime

# Modules that contribute benchmark subcommands: each has register_bench(subparsers).
BENCH_MODULES: list[str] = [
    "ggufsm.reference.bench.runtime",
    "ggufsm.reference.bench.parse",
    "ggufsm.reference.bench.kernels",
    "ggufsm.reference.bench.forward",
    "ggufsm.reference.bench.decode",
    "ggufsm.reference.bench.batch",
    "ggufsm.reference.bench.guard",
]


def register(subparsers) -> None:
    bench_parser = subparsers.add_parser(
        "bench", help="benchmarks (results as ratios against the peer where one exists)",
        description="`ggufsm bench -m MODEL` runs the runtime benchmark; the subcommands run the others.")
    # `ggufsm bench -m MODEL` with no subcommand is the runtime benchmark.
    bench_runtime.add_options(bench_parser)
    bench_commands = bench_parser.add_subparsers(dest="bench_command", required=False, metavar="BENCH")
    for module_name in BENCH_MODULES:
        importlib.import_module(module_name).register_bench(bench_commands)
