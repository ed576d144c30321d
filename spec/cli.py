"""`ggufsm spec ...`: check the lifecycle table and print what is derived from it."""

from __future__ import annotations

import sys
from pathlib import Path

from ggufsm.spec.table import TABLE_PATH, SpecError, read_table, spec_from_table

DIAGRAM_FORMATS = ("svg", "png", "dot", "mermaid")


def checkout_docs_dir() -> Path | None:
    """docs/spec of the source checkout the table is read from, where the derived documents are
    kept under version control; None when ggufsm is installed from a wheel (no checkout)."""
    checkout = TABLE_PATH.resolve().parent.parent
    return checkout / "docs" / "spec" if (checkout / "pyproject.toml").is_file() else None


def register(subparsers) -> None:
    spec_parser = subparsers.add_parser("spec", help="the lifecycle table: check it, print tables and diagrams")
    commands = spec_parser.add_subparsers(dest="spec_command", required=True, metavar="SPEC_COMMAND")

    check = commands.add_parser("check", help="report every defect of the table; exit 1 if there is any")
    _table_option(check)
    check.set_defaults(handler=_check)

    table = commands.add_parser("table", help="print the lifecycle as Markdown (states, matrix, cells)")
    _table_option(table)
    table.set_defaults(handler=_table)

    diagram = commands.add_parser("diagram", help="draw the state diagram with graphviz (or as Mermaid)")
    diagram.add_argument("--format", choices=DIAGRAM_FORMATS, default="svg", help="what to draw")
    diagram.add_argument("-o", "--output", type=Path, help="write here instead of standard output")
    _table_option(diagram)
    diagram.set_defaults(handler=_diagram)

    docs = commands.add_parser("docs", help="write the derived documents: lifecycle.md, .svg, .dot, .mmd")
    default_docs = checkout_docs_dir()
    docs.add_argument("-o", "--output", "--out", type=Path, default=default_docs, metavar="DIR",
                      help="the directory to write (default: "
                           + (f"the checkout's {default_docs}" if default_docs else "none: installed from a wheel, give -o")
                           + "; never the current directory unless given)")
    _table_option(docs)
    docs.set_defaults(handler=_docs)

    generate = commands.add_parser(
        "generate", help="regenerate the table's Python vocabulary (spec/names.py, spec/errors.py); --check only compares")
    generate.add_argument("--check", action="store_true", help="exit 1 if a generated module is stale; write nothing")
    _table_option(generate)
    generate.set_defaults(handler=_generate)

    version = commands.add_parser("version", help="print the table's spec version")
    _table_option(version)
    version.set_defaults(handler=_version)


def _table_option(parser) -> None:
    parser.add_argument("--table", type=Path, default=TABLE_PATH, help="the lifecycle table (default: the packaged one)")


def _spec(args):
    """The checked Spec, or None after printing why the table is unusable."""
    try:
        return spec_from_table(read_table(args.table))
    except SpecError as error:
        print(f"ggufsm spec: {error}", file=sys.stderr)
        return None


def _check(args) -> int:
    from ggufsm.spec.check import check_table

    try:
        raw = read_table(args.table)
    except SpecError as error:
        print(f"ggufsm spec check: {error}", file=sys.stderr)
        return 1
    defects = check_table(raw)
    for defect in defects:
        print(defect)
    if defects:
        print(f"{args.table}: {len(defects)} defect(s)", file=sys.stderr)
        return 1
    spec = spec_from_table(raw)
    branches = sum(1 for _ in spec.all_branches())
    print(
        f"{args.table}: spec {spec.version} is sound: {len(spec.states)} states, {len(spec.operations)} operations, "
        f"{len(spec.cells)} cells, {branches} branches, {len(spec.errors)} errors, {len(spec.guards)} guards"
    )
    return 0


def _table(args) -> int:
    from ggufsm.spec.render import markdown

    spec = _spec(args)
    if spec is None:
        return 1
    sys.stdout.write(markdown(spec))
    return 0


def _diagram(args) -> int:
    from ggufsm.spec import render

    spec = _spec(args)
    if spec is None:
        return 1
    if args.format == "dot":
        content = render.dot_source(spec).encode()
    elif args.format == "mermaid":
        content = render.mermaid(spec).encode()
    else:
        content = render.render_image(spec, args.format)
    if args.output:
        args.output.write_bytes(content)
        print(f"wrote {args.output} ({len(content)} bytes, spec {spec.version})", file=sys.stderr)
    elif args.format == "png" and sys.stdout.isatty():
        print("ggufsm spec diagram: PNG is binary; give -o FILE or redirect standard output", file=sys.stderr)
        return 1
    else:
        sys.stdout.buffer.write(content)
    return 0


def _docs(args) -> int:
    from ggufsm.spec.render import write_documents

    spec = _spec(args)
    if spec is None:
        return 1
    if args.output is None:
        print("ggufsm spec docs: give -o DIR (ggufsm is not running from a source checkout)", file=sys.stderr)
        return 1
    for path in write_documents(spec, args.output):
        print(f"wrote {path}")
    return 0


def _generate(args) -> int:
    from ggufsm.spec import codegen

    spec = _spec(args)
    if spec is None:
        return 1
    if args.check:
        stale = codegen.stale_files(spec)
        for path in stale:
            print(f"stale: {path} (run `ggufsm spec generate`)")
        return 1 if stale else 0
    for path in codegen.write_generated(spec):
        print(f"wrote {path}")
    return 0


def _version(args) -> int:
    spec = _spec(args)
    if spec is None:
        return 1
    print(spec.version)
    return 0
