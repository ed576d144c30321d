"""Every case gives the same verdict run after run, on a loaded machine (issue 11, item 6).

Not a test (it takes minutes): a tool that runs the whole suite several times
against each implementation the kit's tests use (the reference in-process
and over serve-stdio, the toy runtime, the controls, the wrong toys and
broken references), with CPU hogs busy beside it, and lists every case whose
verdict changed between runs. Run from the worktree:

    .venv/bin/python tests/conformance/verdict_stability.py --runs 10 --hogs 2

It exits 1 if any verdict flipped. ``--only GLOB`` (repeatable) keeps the
implementations whose label matches.
"""

from __future__ import annotations

import argparse
import fnmatch
import functools
import multiprocessing
import shlex
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import broken_reference  # noqa: E402
import controls  # noqa: E402
import toy_runtime  # noqa: E402
from test_power import CAUGHT  # noqa: E402
from toy_inputs import toy_suite_inputs  # noqa: E402

from ggufsm.conformance.adapter import Implementation, InProcessImplementation, open_implementation  # noqa: E402
from ggufsm.conformance.inputs import prepare_inputs  # noqa: E402
from ggufsm.conformance.plan.recipes import SuiteInputs  # noqa: E402
from ggufsm.conformance.run.runner import run_suite  # noqa: E402

REFERENCE = "python:ggufsm.conformance.adapters.reference:make_adapter"
SERVE_STDIO = f"{shlex.quote(sys.executable)} -m ggufsm serve-stdio"
# broken reference -> the cases that must catch it (test_broken_reference.py)
BROKEN = {"make_reset_keeps_request": ["*.reset*", "behaviour.reset*", "walk.*"],
          "make_ready_after_failed_load": ["Initialized.load_model*", "walk.*"],
          "make_silent_reset_keeps_request": ["behaviour.reset*"],
          "make_leaks_on_free": ["behaviour.free_returns_memory"],
          "make_leaks_five_percent": ["behaviour.free_returns_memory"]}
WRONG_TOYS = ("make_reset_keeps_request", "make_ready_after_failed_load", "make_without_replace",
              "make_silent_reset_keeps_request", "make_length_when_the_context_fills",
              "make_failed_replace_drops_the_model")


def hog() -> None:
    while True:
        pass


Found = tuple[str, Callable[[], Implementation], SuiteInputs, int, list[str]]


def implementations(workdir: Path) -> list[Found]:
    """(label, opener, inputs, walk examples, case globs) for every implementation the kit's tests
    judge; a wrong toy of test_power.py and a broken reference run the cases that must catch them."""
    real = prepare_inputs(workdir / "real")
    (workdir / "toy").mkdir()
    toy = toy_suite_inputs(workdir / "toy")
    found: list[Found] = [
        ("reference-in-process", lambda: open_implementation(REFERENCE, isolate=False), real, 40, []),
        ("reference-serve-stdio", lambda: open_implementation(SERVE_STDIO, isolate=True), real, 40, []),
        ("toy", lambda: InProcessImplementation(toy_runtime.make_adapter, "toy"), toy, 10, []),
    ]
    for control in controls.CONTROLS:
        found.append((control.name, functools.partial(InProcessImplementation, control, control.name), toy, 10, []))
    for variant, (case, _) in sorted(CAUGHT.items()):
        factory = functools.partial(toy_runtime.make_variant, variant)
        glob = case.replace("[", "[[]") if "*" not in case else case
        found.append((variant, functools.partial(InProcessImplementation, factory, variant), toy, 0, [glob]))
    for name in WRONG_TOYS:
        found.append((f"toy-{name}", functools.partial(InProcessImplementation, getattr(toy_runtime, name), name),
                      toy, 10, []))
    for name, globs in BROKEN.items():
        found.append((f"broken-{name}", functools.partial(InProcessImplementation, getattr(broken_reference, name),
                                                          name), real, 10, globs))
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--hogs", type=int, default=2, help="busy processes beside the suite")
    parser.add_argument("--only", action="append", help="implementation labels to keep (glob; repeatable)")
    options = parser.parse_args()
    hogs = [multiprocessing.Process(target=hog, daemon=True) for _ in range(options.hogs)]
    for process in hogs:
        process.start()
    flipped = 0
    try:
        with tempfile.TemporaryDirectory() as workdir:
            for label, opener, inputs, walks, globs in implementations(Path(workdir)):
                if not any(fnmatch.fnmatchcase(label, glob) for glob in options.only or ["*"]):
                    continue
                verdicts: dict[str, list[str]] = defaultdict(list)
                messages: dict[str, set[str]] = defaultdict(set)
                started = time.perf_counter()
                for _ in range(options.runs):
                    with opener() as implementation:
                        run = run_suite(implementation, inputs, walk_examples=walks, case_globs=globs)
                    for result in run.results:
                        verdicts[result.id].append(result.status)
                        if result.status != "pass":
                            messages[result.id].add(result.message.splitlines()[0][:300])
                unstable = {case: statuses for case, statuses in verdicts.items() if len(set(statuses)) > 1}
                flipped += len(unstable)
                failing = sum(statuses[0] != "pass" for statuses in verdicts.values())
                print(f"{label}: {len(verdicts)} cases x {options.runs} runs in {time.perf_counter() - started:.0f} s;"
                      f" {failing} not passing; {len(unstable)} flipped", flush=True)
                for case, statuses in sorted(unstable.items()):
                    print(f"  FLIP {case}: {statuses}", flush=True)
                    for message in sorted(messages[case]):
                        print(f"      {message}", flush=True)
    finally:
        for process in hogs:
            process.terminate()
    return 1 if flipped else 0


if __name__ == "__main__":
    sys.exit(main())
