"""The `ggufsm` command. Each room adds its own subcommands through `register`."""

from __future__ import annotations

import argparse
import importlib
import sys

from ggufsm.spec.errors import GgufsmError

# Modules that contribute subcommands: each has register(subparsers).
COMMAND_MODULES = [
    "ggufsm.spec.cli",
    "ggufsm.reference.cli.bench",
    "ggufsm.reference.cli.models",
    "ggufsm.reference.cli.tokenize",
    "ggufsm.reference.cli.generate",
    "ggufsm.conformance.cli",
    "ggufsm.reference.cli.inspect",
    "ggufsm.reference.cli.soak",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ggufsm", description=__import__("ggufsm").__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"ggufsm {__import__('ggufsm').__version__}")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module_name in COMMAND_MODULES:
        importlib.import_module(module_name).register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.handler(args) or 0)
    except GgufsmError as error:
        # Named errors are the expected way for a command to fail: print the
        # code and message, no traceback.
        print(f"ggufsm: {error}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        return 1
