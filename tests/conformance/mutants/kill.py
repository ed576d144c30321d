"""Running the conformance suite against one mutant: which cases fail, and so whether it is killed.

The suite runs in-process on the kit's default fixtures (the way a Python
runtime author runs it, and the fastest), through the runner's public entry
point ``run_suite``, so the same code measures the suite of any branch.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ggufsm.conformance.adapter import Adapter, InProcessImplementation
from ggufsm.conformance.inputs import prepare_inputs
from ggufsm.conformance.run.runner import run_suite


@dataclass(frozen=True)
class Failure:
    case: str      # the case id
    rule: str      # the rule the case proves (a branch of the table, a behaviour, the walk)
    message: str   # the message's first line


@dataclass
class Verdict:
    mutant: str
    failures: list[Failure] = field(default_factory=list)
    cases_run: int = 0
    seconds: float = 0.0
    problem: str = ""   # the run itself could not finish (hang, crash of the runner)

    @property
    def killed(self) -> bool:
        return bool(self.failures)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Verdict:
        return cls(data["mutant"], [Failure(**failure) for failure in data["failures"]], data["cases_run"],
                   data["seconds"], data.get("problem", ""))


class _FirstFailure(Exception):
    """Raised from the runner's progress callback to stop the run at the first failing case."""


def run_against(factory: Callable[[], Adapter], label: str, *, workdir: Path | None = None,
                stop_at_first_failure: bool = False) -> Verdict:
    """The suite against the implementation the factory opens; every failing case, or only the first."""
    verdict = Verdict(label)
    started = time.perf_counter()

    def record(result) -> None:
        verdict.cases_run += 1
        if result.counts_as_failure:
            first_line = result.message.splitlines()[0] if result.message else result.status
            verdict.failures.append(Failure(result.id, result.rule, first_line))
            if stop_at_first_failure:
                raise _FirstFailure

    with tempfile.TemporaryDirectory(prefix="ggufsm-power-") as scratch:
        inputs = prepare_inputs(workdir or Path(scratch))
        try:
            run_suite(InProcessImplementation(factory, label=label), inputs, progress=record)
        except _FirstFailure:
            pass
    verdict.seconds = time.perf_counter() - started
    return verdict
