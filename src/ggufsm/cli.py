"""The `ggufsm` command. Each room adds its own subcommands through `register`.

Every command ends without a Python traceback for what a user can cause: a
named error prints its code and message (exit 2), Ctrl-C exits 130 (the
shell's status for SIGINT). `--debug`, before the command, shows the
traceback instead.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from ggufsm.spec.errors import GgufsmError

# Modules that contribute subcommands: each has register(subparsers).
COMMAND_MODULES = [
    "ggufsm.reference.cli.generate",
    "ggufsm.reference.cli.chat",
    "ggufsm.reference.cli.demo",
    "ggufsm.reference.cli.inspect",
    "ggufsm.reference.cli.tokenize",
    "ggufsm.reference.cli.models",
    "ggufsm.reference.cli.cache",
    "ggufsm.spec.cli",
    "ggufsm.conformance.cli",
    "ggufsm.reference.cli.bench",
    "ggufsm.reference.cli.soak",
]

DEBUG_HELP = "show Python tracebacks instead of one-line errors (also after the command)"
NAMED_ERROR = 2
INTERRUPTED = 130


class HelpFormatter(argparse.HelpFormatter):
    """Every option's help ends with its default, unless the help already says it or there is
    none to state (a flag, an option that is unset unless given)."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        help_text = action.help or ""
        default = action.default
        if ("default" in help_text or any(default is unset for unset in (None, False, argparse.SUPPRESS))
                or not (action.option_strings or action.nargs in (argparse.OPTIONAL, argparse.ZERO_OR_MORE))):
            return help_text
        shown = ",".join(map(str, default)) if isinstance(default, (list, tuple)) else "%(default)s"
        return f"{help_text} (default: {shown})" if help_text else f"(default: {shown})"


def build_parser() -> argparse.ArgumentParser:
    import ggufsm

    parser = argparse.ArgumentParser(prog="ggufsm", description=(ggufsm.__doc__ or "").splitlines()[0],
                                     formatter_class=HelpFormatter)
    parser.add_argument("--version", action="version", version=f"ggufsm {ggufsm.__version__}")
    parser.add_argument("--debug", action="store_true", help=DEBUG_HELP)
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module_name in COMMAND_MODULES:
        importlib.import_module(module_name).register(subparsers)
    _describe_every_command(parser)
    return parser


def _describe_every_command(parser: argparse.ArgumentParser) -> None:
    """Each subcommand's --help opens with the one-line help its parent lists it with, states
    defaults the same way and takes --debug, however deep it sits."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {choice.dest: choice.help for choice in action._choices_actions}
            for name, subparser in action.choices.items():
                subparser.formatter_class = HelpFormatter
                if subparser.description is None and helps.get(name):
                    subparser.description = helps[name]
                if "--debug" not in subparser._option_string_actions:
                    # Unset unless given, so that `ggufsm --debug COMMAND` keeps its value here.
                    subparser.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=DEBUG_HELP)
                _describe_every_command(subparser)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.handler(args) or 0)
    except GgufsmError as error:
        # Named errors are the expected way for a command to fail: print the
        # code and message, no traceback.
        if args.debug:
            raise
        print(f"ggufsm: {error}", file=sys.stderr)
        return NAMED_ERROR
    except KeyboardInterrupt:
        if args.debug:
            raise
        print("\nggufsm: interrupted", file=sys.stderr)
        return INTERRUPTED
    except BrokenPipeError:
        return 1
