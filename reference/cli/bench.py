"""`ggufsm bench ...`: benchmarks. Each kind lives in its own module with
register_bench(bench_subparsers); results are printed, and with `--json PATH` every bench also
writes its record (reference/bench/record.py): provenance, options, every sample, the limits."""

from __future__ import annotations

import argparse
import functools
import importlib
from pathlib import Path

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
JSON_HELP = "also write the benchmark record (provenance, options, every sample, limits) as JSON here"


def register(subparsers) -> None:
    bench_parser = subparsers.add_parser(
        "bench", help="benchmarks (results as ratios against the peer where one exists)",
        description="`ggufsm bench -m MODEL` runs the runtime benchmark; the subcommands run the others.")
    # `ggufsm bench -m MODEL` with no subcommand is the runtime benchmark.
    bench_runtime.add_options(bench_parser)
    bench_commands = bench_parser.add_subparsers(dest="bench_command", required=False, metavar="BENCH")
    for module_name in BENCH_MODULES:
        importlib.import_module(module_name).register_bench(bench_commands)
    # Every bench, the default one included, takes --json and runs with a record (added here, once,
    # so that no bench module parses or writes it).
    recorded(bench_parser, "runtime")
    for name, parser in bench_commands.choices.items():
        recorded(parser, name)
    # Not a bench: it renders the stored records.
    importlib.import_module("ggufsm.reference.bench.report").register_report(bench_commands)


def recorded(parser: argparse.ArgumentParser, bench: str) -> None:
    parser.add_argument("--json", type=Path, default=None, metavar="PATH", help=JSON_HELP)
    handler = parser.get_default("handler")
    parser.set_defaults(handler=functools.partial(run_recorded, bench, handler))


def run_recorded(bench: str, handler, args) -> int:
    from ggufsm.reference.bench.record import Record

    args.record = Record.for_args(bench, args)
    status = int(handler(args) or 0)
    if args.json is not None and status == 0:
        args.record.write(args.json)
    return status
