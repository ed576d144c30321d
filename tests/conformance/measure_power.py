"""Measure the conformance suite's power and write docs/conformance/power.md.

    .venv/bin/pip install -e '.[mutation]'            # mutmut, once
    .venv/bin/python tests/conformance/measure_power.py

runs the suite (in-process, default fixtures) against every hand-written
mutant (tests/conformance/mutants/, each in a child process of its own) and
against the unmodified reference as a control, then mutmut on the lifecycle
code ([tool.mutmut] in pyproject.toml) with the suite as its test, and writes
the report. It measures whatever suite the working tree holds.

    --mutant NAME [--json]     one mutant: the first case that fails against it (--all-failures: every one)
    --jobs N                   N mutants at once, each in a child process
    --skip-mutmut              the hand-written mutants only (the report says mutmut was not run)
    --skip-mutants             mutmut only (with the control)
    --results FILE             also keep the raw results as JSON; --from-results FILE... re-renders from them
                               (several files: the mutants' verdicts from one, mutmut's from another)
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from mutants import BY_NAME, mutmut_run, report  # noqa: E402
from mutants.kill import Verdict, run_against  # noqa: E402

REPO = HERE.parents[1]
REPORT = REPO / "docs" / "conformance" / "power.md"
CONTROL = "reference"            # the unmodified reference runtime, run like a mutant: it must pass everything
MUTANT_TIME_LIMIT_S = 900        # one mutant's whole suite; only a suite that hangs comes near it


def one(name: str, *, all_failures: bool = False) -> Verdict:
    """The suite against one mutant (or the control, always in full): its first failing case, or all of them."""
    if name == CONTROL:
        from ggufsm.conformance.adapters.reference import make_adapter

        return run_against(make_adapter, CONTROL)
    return run_against(BY_NAME[name], name, stop_at_first_failure=not all_failures)


def in_child(name: str, *, all_failures: bool = False) -> Verdict:
    """One mutant's suite in a process of its own (mutants keep process-wide state; a hang stays contained)."""
    command = [sys.executable, str(Path(__file__).resolve()), "--mutant", name, "--json",
               *(["--all-failures"] if all_failures else [])]
    started = time.perf_counter()
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=MUTANT_TIME_LIMIT_S)
    except subprocess.TimeoutExpired:
        return Verdict(name, seconds=time.perf_counter() - started,
                       problem=f"the suite did not finish within {MUTANT_TIME_LIMIT_S} s")
    if done.returncode != 0:
        tail = "\n".join(done.stderr.splitlines()[-5:])
        return Verdict(name, seconds=time.perf_counter() - started,
                       problem=f"the suite's process exited with {done.returncode}: {tail}")
    return Verdict.from_json(json.loads(done.stdout.splitlines()[-1]))


def measure_mutants(names: list[str], *, jobs: int = 1, all_failures: bool = False,
                    log=sys.stderr) -> dict[str, Verdict]:
    """The control and each mutant, ``jobs`` child processes at a time; verdicts in the order named."""
    from concurrent.futures import ThreadPoolExecutor

    def measure(name: str) -> Verdict:
        verdict = in_child(name, all_failures=all_failures)
        outcome = (verdict.problem or ("killed by " + verdict.failures[0].case if verdict.failures else "NOT killed")) \
            if name != CONTROL else f"{verdict.cases_run} cases, {len(verdict.failures)} failing"
        print(f"{name:40s} {outcome}  ({verdict.cases_run} cases, {verdict.seconds:.1f} s)", file=log, flush=True)
        return verdict

    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        return dict(zip(names, pool.map(measure, names), strict=True))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mutant", metavar="NAME", help=f"one mutant (or {CONTROL!r}): run the suite against it")
    parser.add_argument("--json", action="store_true", help="with --mutant: print the verdict as JSON")
    parser.add_argument("--all-failures", action="store_true",
                        help="run each mutant's whole suite and list every failing case (default: stop at the first)")
    parser.add_argument("--jobs", type=int, default=1, help="mutants measured at once, each in its own process")
    parser.add_argument("--only", nargs="+", metavar="NAME", help="measure these mutants only (with the control)")
    parser.add_argument("--skip-mutmut", action="store_true")
    parser.add_argument("--max-children", type=int, default=2, help="mutmut's parallel workers (default 2)")
    parser.add_argument("--output", type=Path, default=REPORT)
    parser.add_argument("--results", type=Path, help="write the raw results here (JSON)")
    parser.add_argument("--skip-mutants", action="store_true", help="mutmut only (with --results, to merge later)")
    parser.add_argument("--from-results", type=Path, nargs="+",
                        help="render the report from raw results (several: the mutants' from one, mutmut's from "
                             "another); run nothing")
    args = parser.parse_args(argv)

    if args.mutant:
        verdict = one(args.mutant, all_failures=args.all_failures)
        if args.json:
            print(json.dumps(verdict.to_json()))
        else:
            print(f"{verdict.mutant}: {'killed' if verdict.killed else 'NOT killed'} ({verdict.cases_run} cases, "
                  f"{verdict.seconds:.1f} s)")
            for failure in verdict.failures:
                print(f"  {failure.case}\n      {failure.message}")
        return 0

    if args.from_results:
        results = report.Results.merged([report.Results.from_json(json.loads(path.read_text(encoding="utf-8")))
                                         for path in args.from_results])
    else:
        names = [CONTROL] if args.skip_mutants else [CONTROL, *(args.only or BY_NAME)]
        verdicts = measure_mutants(names, jobs=args.jobs, all_failures=args.all_failures)
        mutmut = None if args.skip_mutmut else mutmut_run.run(max_children=args.max_children)
        results = report.Results.collect(verdicts, mutmut, control=CONTROL)
    if args.results:
        args.results.write_text(json.dumps(results.to_json(), indent=1) + "\n", encoding="utf-8")
    args.output.write_text(report.render(results), encoding="utf-8")
    print(f"wrote {args.output}: {results.headline()}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
