"""`ggufsm conformance ...`: run the suite against implementations; serve a Python adapter over stdio."""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ggufsm.conformance.run.runner import CaseResult


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("conformance", help="the conformance kit: run the suite against any implementation")
    commands = parser.add_subparsers(dest="conformance_command", required=True, metavar="CONFORMANCE_COMMAND")

    run = commands.add_parser("run", help="run the suite; exit 0 only when every case not expected to fail passes")
    run.add_argument("--impl", action="append", required=True, metavar="IMPL",
                     help='python:MODULE:FACTORY, or a command speaking the protocol (e.g. "ggufsm serve-stdio"); '
                          "repeat to compare implementations")
    run.add_argument("--model", type=Path, help="the model the cases load (default: the tiny synthetic llama)")
    run.add_argument("--inputs", type=Path, metavar="FILE",
                     help="JSON naming every model file the cases use (model, alt_model, corrupt_model, "
                          "unsupported_model, missing_model) and values (n_ctx, prompt, ...)")
    run.add_argument("--expect-fail", type=Path, metavar="FILE", help="case-id globs expected to fail, one a line")
    run.add_argument("--report-dir", type=Path, metavar="DIR", help="write JSON, JUnit XML, Markdown and SVG reports here")
    run.add_argument("--cases", action="append", default=[], metavar="GLOB", help="run only cases whose id matches")
    run.add_argument("--in-process", action="store_true",
                     help="run python: implementations in this process (faster; a crash ends the run)")
    run.add_argument("--walk-examples", type=int, default=40, metavar="N", help="random walks to try (0: none)")
    run.add_argument("--timeout", type=float, default=60.0, metavar="S", help="seconds an operation may take")
    run.add_argument("--quiet", action="store_true", help="print only the summary")
    run.set_defaults(handler=_run)

    cases = commands.add_parser("cases", help="list the cases the table generates (model files shown as <placeholders>)")
    cases.add_argument("--json", action="store_true",
                       help="the suite as data (conformance/suite.json; docs/conformance/suite.md)")
    cases.add_argument("--cases", action="append", default=[], metavar="GLOB",
                       help="list only cases whose id matches (repeatable; default: every case)")
    cases.set_defaults(handler=_cases)

    replay = commands.add_parser("replay", help="make a failure's calls again on a fresh runtime: a walk's "
                                                "reproduction (protocol requests, one a line) or a case by its id")
    replay.add_argument("file", type=Path, nargs="?", help="requests as printed by a failing random walk")
    replay.add_argument("--case", metavar="ID", help="a case of the suite, by its id (as a failure prints it)")
    replay.add_argument("--impl", required=True, metavar="IMPL",
                        help='python:MODULE:FACTORY, or a command speaking the protocol (e.g. "ggufsm serve-stdio")')
    replay.add_argument("--model", type=Path, help="as given to the run that failed")
    replay.add_argument("--inputs", type=Path, metavar="FILE", help="as given to the run that failed")
    replay.add_argument("--in-process", action="store_true", help="run a python: implementation in this process")
    replay.set_defaults(handler=_replay)

    report = commands.add_parser("report", help="re-render a run's reports (Markdown, JUnit, SVG) from its results.json alone")
    report.add_argument("dir", type=Path, help="a --report-dir of an earlier run (its results.json)")
    report.set_defaults(handler=_report)

    compare = commands.add_parser("compare", help="the comparison page of several runs, from their stored results.json")
    compare.add_argument("results", type=Path, nargs="+", metavar="RESULTS", help="results.json files (or their folders)")
    compare.add_argument("--findings", type=Path, metavar="FILE", help="findings per implementation (YAML)")
    compare.add_argument("--output", type=Path, metavar="FILE",
                         help="write into FILE between its compare markers (default: print the page)")
    compare.set_defaults(handler=_compare)

    serve = commands.add_parser("serve", help="serve a python:MODULE:FACTORY adapter over the protocol (stdin/stdout)")
    serve.add_argument("--impl", required=True, metavar="python:MODULE:FACTORY", help="the adapter factory to serve")
    serve.set_defaults(handler=_serve)

    # The reference runtime over the protocol: the kit serves it like any Python adapter, so the
    # kit depends on the runtime and never the other way round.
    serve_reference = subparsers.add_parser(
        "serve-stdio", help="serve the reference runtime over the JSON-lines conformance protocol (stdin/stdout)")
    serve_reference.add_argument(
        "--model-root", action="append", default=None, metavar="DIR",
        help="load models only from under DIR (repeatable); a path outside every root, after resolving "
             "symlinks and relative paths, is refused with ModelUnavailable (default: any path)")
    serve_reference.set_defaults(handler=_serve_reference)


def _report(args: argparse.Namespace) -> int:
    from ggufsm.conformance.results_file import rerender

    for path in rerender(args.dir):
        print(f"wrote {path}", file=sys.stderr)
    return 0


def _compare(args: argparse.Namespace) -> int:
    from ggufsm.conformance.compare import main

    return main(args.results, findings=args.findings, output=args.output)


def _serve(args: argparse.Namespace) -> int:
    from ggufsm.conformance.adapter import ImplementationUnusable, load_factory
    from ggufsm.conformance.protocol import serve_stdio

    try:
        factory = load_factory(args.impl)
    except ImplementationUnusable as error:   # the runner that started it quotes this line
        print(f"ggufsm conformance serve: {error}", file=sys.stderr)
        return 1
    return serve_stdio(factory)


def _serve_reference(args: argparse.Namespace) -> int:
    from ggufsm.conformance.adapters.reference import make_adapter, rooted_factory
    from ggufsm.conformance.protocol import serve_stdio

    if args.model_root is None:
        return serve_stdio(make_adapter)
    try:
        factory = rooted_factory(args.model_root)
    except ValueError as error:
        print(f"ggufsm serve-stdio: {error}", file=sys.stderr)
        return 2
    return serve_stdio(factory)


def _cases(args: argparse.Namespace) -> int:
    import fnmatch

    from ggufsm.conformance.inputs import placeholder_inputs
    from ggufsm.conformance.plan.behaviours import BEHAVIOUR_RULES
    from ggufsm.conformance.plan.cases import plan_suite
    from ggufsm.conformance.plan.suite_file import render, suite_document
    from ggufsm.spec import load_spec

    spec, inputs = load_spec(), placeholder_inputs()
    plans, _ = plan_suite(spec, inputs)
    chosen = [plan for plan in plans if not args.cases or any(fnmatch.fnmatchcase(plan.id, g) for g in args.cases)]
    if args.json:
        sys.stdout.write(render(suite_document(spec, inputs, chosen)))
        return 0
    for plan in chosen:
        print(f"{plan.id}    [{plan.rule}]")
        for line in plan.describe():
            print(f"    {line}")
    for rule in BEHAVIOUR_RULES:
        print(f"{rule.id}\n    {rule.statement}")
    print(f"{len(plans)} table cases, {len(BEHAVIOUR_RULES)} behavioural cases, and the random walks")
    return 0


def _replay(args: argparse.Namespace) -> int:
    """A case by id: its calls, one by one with their replies, then its verdict. A file: each request
    after the previous answer; a cancel that follows a streaming generate is sent while the generate
    runs (held at its first token where the implementation pauses), as the walk did. Exit 1 if the
    case fails or the implementation dies or hangs."""
    if (args.file is None) == (args.case is None):
        print("ggufsm conformance replay: give a reproduction FILE or --case ID (one of them)", file=sys.stderr)
        return 2
    from ggufsm.conformance.adapter import ImplementationUnusable

    try:
        if args.case is not None:
            return _replay_case(args)
        return _replay_file(args)
    except ImplementationUnusable as error:
        _diagnose(args, error, "replay")
        return 1


def _replay_case(args: argparse.Namespace) -> int:
    from ggufsm.conformance.adapter import open_implementation
    from ggufsm.conformance.inputs import prepare_inputs
    from ggufsm.conformance.plan.cases import plan_suite
    from ggufsm.conformance.run.runner import build_cases, run_case
    from ggufsm.spec import load_spec

    with tempfile.TemporaryDirectory(prefix="ggufsm-replay-") as workdir:
        inputs = prepare_inputs(Path(workdir), model=args.model, inputs_file=args.inputs)
        with open_implementation(args.impl, isolate=not args.in_process) as implementation:
            cases, _ = build_cases(load_spec(), inputs, implementation.info, walk_examples=0)
            chosen = [case for case in cases if case.id == args.case]
            if not chosen:
                known = [plan.id for plan in plan_suite(load_spec(), inputs)[0]]
                print(f"ggufsm conformance replay: no case {args.case!r} ({len(known)} cases; "
                      "`ggufsm conformance cases` lists them)", file=sys.stderr)
                return 2
            result = run_case(chosen[0], implementation)
    for call in result.calls:
        print(f"{call['op']}({json.dumps(call['args'])[:160]}) -> {call['reply']}")
    print(f"{result.id}: {result.status.upper()}" + (f"\n{result.message}" if result.message else ""))
    return 0 if result.status == "pass" else 1


def _replay_file(args: argparse.Namespace) -> int:
    from ggufsm.conformance.adapter import ImplementationDied, ImplementationHung, open_implementation
    from ggufsm.conformance.plan.recipes import Action
    from ggufsm.conformance.run.overlap import call_with_cancel_at_first_token
    from ggufsm.spec.names import Operation

    decoder = json.JSONDecoder()
    try:
        lines = args.file.read_text(encoding="utf-8").splitlines()
        requests = [decoder.raw_decode(line.strip())[0] for line in lines if line.strip().startswith("{")]
    except (OSError, UnicodeDecodeError, ValueError) as error:
        print(f"ggufsm conformance replay: cannot read {args.file}: {getattr(error, 'strerror', None) or error}",
              file=sys.stderr)
        return 2
    with open_implementation(args.impl, isolate=not args.in_process) as implementation:
        adapter = implementation.open()
        index = 0
        while index < len(requests):
            request = requests[index]
            arguments = dict(request.get("args") or {})
            cancel_next = bool(arguments.pop("stream", False) and index + 1 < len(requests)
                               and requests[index + 1]["op"] == Operation.cancel)
            shown = f"{request['op']}({json.dumps(arguments)[:120]})"
            try:
                if cancel_next:
                    cancel = Action(Operation.cancel, requests[index + 1].get("args") or {})
                    reply, cancel_reply, _, _ = call_with_cancel_at_first_token(
                        adapter, Action(Operation(request["op"]), arguments), cancel)
                else:
                    reply, cancel_reply = adapter.call(request["op"], arguments), None
            except (ImplementationDied, ImplementationHung) as ended:
                print(f"{shown} -> {ended}")
                return 1
            print(f"{shown} -> {reply.describe()}")
            if cancel_next:
                print(f"  cancel -> {cancel_reply.describe() if cancel_reply else 'no answer while it ran'}")
            index += 2 if cancel_next else 1
    return 0


def _run(args: argparse.Namespace) -> int:
    from ggufsm.conformance.adapter import ImplementationUnusable, open_implementation
    from ggufsm.conformance.inputs import prepare_inputs
    from ggufsm.conformance.provenance import for_run, load_average
    from ggufsm.conformance.report import summary_line, write_reports
    from ggufsm.conformance.run.runner import RunResult, SuiteStopped, read_expect_fail, run_suite

    expect_fail = read_expect_fail(args.expect_fail)
    runs: list[RunResult] = []
    provenance: list[dict[str, Any]] = []
    # An implementation that cannot be tested gets one line saying why (--debug: the traceback) and
    # the others still run; Ctrl-C stops the run. Either way the cases that ran are reported.
    unusable: list[BaseException] = []
    interrupted = False
    with tempfile.TemporaryDirectory(prefix="ggufsm-conformance-") as workdir:
        inputs = prepare_inputs(Path(workdir), model=args.model, inputs_file=args.inputs)
        for impl in args.impl:
            load_before, ran = load_average(), len(runs)
            try:
                with open_implementation(impl, isolate=not args.in_process, timeout=args.timeout) as implementation:
                    print(f"== {impl}", file=sys.stderr)
                    progress = None if args.quiet else _show_result
                    runs.append(run_suite(implementation, inputs, case_globs=args.cases, expect_fail=expect_fail,
                                          walk_examples=args.walk_examples, progress=progress,
                                          replay=_replay_options(args)))
                    print(summary_line(runs[-1]))
            except SuiteStopped as stopped:
                if stopped.run.results:
                    runs.append(stopped.run)
                    print(summary_line(stopped.run))
                if isinstance(stopped.cause, KeyboardInterrupt):
                    interrupted = True
                    break
                unusable.append(stopped.cause)
            except ImplementationUnusable as error:
                unusable.append(error)
            # While the run's input files exist: their sizes and hashes are part of it.
            provenance += [for_run(impl, run, _run_options(args), load_before) for run in runs[ran:]]
    if args.report_dir and runs:
        for path in write_reports(runs, args.report_dir, provenance=provenance):
            print(f"wrote {path}" + (" (partial)" if any(run.stopped for run in runs) else ""), file=sys.stderr)
    for cause in unusable:   # last, where the eye lands
        _diagnose(args, cause)
    if interrupted:
        print("ggufsm conformance run: interrupted", file=sys.stderr)
        return INTERRUPTED
    return 0 if runs and not unusable and all(run.ok for run in runs) else 1


INTERRUPTED = 130   # the shell's status for SIGINT


def _diagnose(args: argparse.Namespace, error: BaseException, command: str = "run") -> None:
    """One line saying why an implementation could not be tested; the traceback only with --debug."""
    if getattr(args, "debug", False):
        import traceback

        traceback.print_exception(error)
    print(f"ggufsm conformance {command}: {error}", file=sys.stderr)


def _run_options(args: argparse.Namespace) -> dict[str, Any]:
    """The options that shape a run's result, for its provenance."""
    return {"timeout_s": args.timeout, "walk_examples": args.walk_examples, "cases": args.cases,
            "in_process": args.in_process, "expect_fail": str(args.expect_fail) if args.expect_fail else None,
            "command": " ".join(sys.argv)}


def _replay_options(args: argparse.Namespace) -> str:
    """What a replay of this run's failures must be given too."""
    import shlex

    options = [("--model", args.model), ("--inputs", args.inputs)]
    flags = "".join(f" {name} {shlex.quote(str(value))}" for name, value in options if value is not None)
    return flags + (" --in-process" if args.in_process else "")


def _show_result(result: CaseResult) -> None:
    from ggufsm.conformance.run.runner import PASS, XFAIL

    line = f"{result.status.upper():>13}  {result.id}  ({result.seconds * 1000:.0f} ms)"
    if result.status not in (PASS, XFAIL):
        line += f"\n               {result.message.splitlines()[0] if result.message else ''}"
    print(line, file=sys.stderr)
