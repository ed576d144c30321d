"""`ggufsm spec ...`: check the table and print what is derived from it."""

from __future__ import annotations

from pathlib import Path

import yaml

TABLE_PATH = Path(__file__).with_name("lifecycle.yaml")


def register(subparsers) -> None:
    spec_parser = subparsers.add_parser("spec", help="the lifecycle table: check it, print tables and diagrams")
    spec_commands = spec_parser.add_subparsers(dest="spec_command", required=True, metavar="SPEC_COMMAND")
    version_parser = spec_commands.add_parser("version", help="print the table's spec version")
    version_parser.set_defaults(handler=_version)


def _version(args) -> int:
    print(yaml.safe_load(TABLE_PATH.read_text(encoding="utf-8"))["spec_version"])
    return 0
