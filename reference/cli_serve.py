"""`ggufsm serve-stdio`: the reference Runtime speaking the conformance protocol on stdin/stdout.

One process serves one runtime handle at a time (``fresh`` starts a new one);
see docs/protocol.md.
"""

from __future__ import annotations


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "serve-stdio", help="serve the reference runtime over the JSON-lines conformance protocol (stdin/stdout)")
    parser.set_defaults(handler=_serve)


def _serve(args) -> int:
    from ggufsm.conformance.adapters.reference import make_adapter
    from ggufsm.conformance.protocol import serve_stdio

    return serve_stdio(make_adapter)
