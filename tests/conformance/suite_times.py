"""The suite's run time on the default fixtures, in-process and over serve-stdio, side by side in one run.

Not a test (a figure for docs/conformance/README.md): wall time, and the CPU
time of this process and its children (what the suite costs, however loaded
the machine), with the load average when each run began:

    .venv/bin/python tests/conformance/suite_times.py
"""

from __future__ import annotations

import os
import resource
import shlex
import sys
import tempfile
import time
from pathlib import Path

from ggufsm.conformance.adapter import open_implementation
from ggufsm.conformance.inputs import prepare_inputs
from ggufsm.conformance.run.runner import run_suite

REFERENCE = "python:ggufsm.conformance.adapters.reference:make_adapter"
SERVE = f"{shlex.quote(sys.executable)} -m ggufsm serve-stdio"


def cpu_seconds() -> float:
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def main() -> None:
    with tempfile.TemporaryDirectory() as d:
        inputs = prepare_inputs(Path(d))
        for label, impl, isolate in (("in-process", REFERENCE, False), ("serve-stdio", SERVE, True)):
            load = os.getloadavg()[0]
            cpu_before, started = cpu_seconds(), time.perf_counter()
            with open_implementation(impl, isolate=isolate) as implementation:
                run = run_suite(implementation, inputs)
            wall, cpu = time.perf_counter() - started, cpu_seconds() - cpu_before
            print(f"{label}: {len(run.results)} cases, {run.counts()}, wall {wall:.1f} s, CPU {cpu:.1f} s, "
                  f"load average {load:.1f}", flush=True)


if __name__ == "__main__":
    main()
