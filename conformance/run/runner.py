"""The runner: every case on a fresh runtime of one implementation, each outcome recorded.

A case passes, fails, or is "not supported" (the implementation lacks an
operation it needs: never a pass). An implementation that dies (abort,
segfault) or hangs fails the case it was in, with the signal recorded; the
next case starts a new process. Cases listed as expected to fail are
"xfail" when they fail and "xpass" when they pass (reported, so the list
can shrink). Every case runs once: races are arranged (pauses), not retried.
Every failure ends with its reproduction: the calls it made, as protocol
requests, and the ``ggufsm conformance replay`` command that makes them again.
"""

from __future__ import annotations

import fnmatch
import json
import shlex
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ggufsm.conformance.adapter import (
    Adapter,
    Implementation,
    ImplementationDied,
    ImplementationHung,
    ImplementationInfo,
    ImplementationUnusable,
    RecordingAdapter,
)
from ggufsm.conformance.plan.cases import Unreachable, plan_suite
from ggufsm.conformance.plan.recipes import SuiteInputs
from ggufsm.conformance.run.behaviours import behaviour_cases
from ggufsm.conformance.run.case import CELL, WALK, Case, Opener, close_quietly
from ggufsm.conformance.run.cells import table_cases
from ggufsm.conformance.run.checks import CaseFailed, Unsupported
from ggufsm.conformance.run.walk import walk_case
from ggufsm.spec import Spec, load_spec

PASS, FAIL, NOT_SUPPORTED, XFAIL, XPASS = "pass", "fail", "not_supported", "xfail", "xpass"
CALLS_KEPT = 200    # the last calls of a case, in its record (a walk makes thousands)
REPRODUCTION_CALLS = 40   # the most calls a failure message prints as its reproduction


@dataclass
class CaseResult:
    id: str
    kind: str
    rule: str
    status: str
    message: str = ""
    cell: str | None = None
    conditions: dict[str, bool] = field(default_factory=dict)
    transitions: list[list[Any]] = field(default_factory=list)
    description: list[str] = field(default_factory=list)
    calls: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    signal: int | None = None
    seconds: float = 0.0
    expected_to_fail: bool = False
    measures: dict[str, Any] = field(default_factory=dict)

    @property
    def counts_as_failure(self) -> bool:
        return self.status in (FAIL, NOT_SUPPORTED)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class RunResult:
    implementation: str
    info: dict[str, Any]
    inputs: dict[str, Any]
    results: list[CaseResult]
    unreachable: list[Unreachable]
    seconds: float
    spec_version: str
    stopped: str | None = None   # why the run ended before its last case (Ctrl-C, an unusable implementation)

    @property
    def ok(self) -> bool:
        return self.stopped is None and not any(result.counts_as_failure for result in self.results)

    def counts(self) -> dict[str, int]:
        counts = {status: 0 for status in (PASS, FAIL, NOT_SUPPORTED, XFAIL, XPASS)}
        for result in self.results:
            counts[result.status] += 1
        return counts


class SuiteStopped(Exception):
    """The run ended before its last case; `run` holds the cases that ran (a partial report's content)
    and `cause` what stopped it: KeyboardInterrupt or ImplementationUnusable."""

    def __init__(self, run: RunResult, cause: BaseException):
        super().__init__(run.stopped)
        self.run, self.cause = run, cause


def read_expect_fail(path: Path | None) -> list[str]:
    """Case-id globs, one a line; '#' starts a comment."""
    if path is None:
        return []
    patterns: list[str] = []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        pattern = line.split("#", 1)[0].strip()
        if pattern:
            patterns.append(pattern)
    return patterns


def _matches(case_id: str, patterns: Iterable[str]) -> bool:
    return any(fnmatch.fnmatchcase(case_id, pattern) for pattern in patterns)


def run_case(case: Case, implementation: Implementation, replay: str = "") -> CaseResult:
    """Run one case once, turning every way it can end into a result (a failure with its reproduction)."""
    result = CaseResult(case.id, case.kind, case.rule, PASS, cell=case.cell, conditions=dict(case.conditions),
                        transitions=[list(transition) for transition in case.transitions], description=case.description)
    started = time.perf_counter()
    recorder: Adapter | None = None
    try:
        adapter = implementation.open() if case.fresh_adapter else Opener(implementation)
        recorder = RecordingAdapter(adapter) if case.fresh_adapter else adapter
        result.notes = list(case.run(recorder) or [])
    except Unsupported as unsupported:
        result.status, result.message = NOT_SUPPORTED, str(unsupported)
    except CaseFailed as failed:
        result.status, result.message = FAIL, str(failed)
    except ImplementationDied as died:
        result.status, result.message, result.signal = FAIL, str(died), died.signal
    except ImplementationHung as hung:
        result.status, result.message = FAIL, f"the implementation hung: {hung}"
    except ImplementationUnusable:
        raise   # not this case's failure: no case can run (SuiteStopped)
    except Exception as error:  # noqa: BLE001  a reply the kit could not interpret: the case fails, the run goes on
        result.status, result.message = FAIL, f"the case could not be judged: {type(error).__name__}: {error}"
    finally:
        if recorder is not None:
            calls = list(getattr(recorder, "calls", []))
            result.calls = [asdict(call) for call in calls[-CALLS_KEPT:]]
            close_quietly(recorder)
    result.measures = dict(case.measures)
    if result.status == FAIL:
        result.message += reproduction_text(case, result, implementation.label, replay)
    result.seconds = time.perf_counter() - started
    return result


def reproduction_text(case: Case, result: CaseResult, label: str, replay: str) -> str:
    """The failure's reproduction: a walk prints its own shrunk sequence; other cases, their calls as
    protocol requests. Then the command that makes them again."""
    command = f"ggufsm conformance replay --impl {shlex.quote(label)}{replay}"
    if case.kind == WALK:
        return (f"\nreplay: save the requests above as walk.jsonl, then: {command} walk.jsonl"
                if "minimal sequence" in result.message else "")
    lines = [json.dumps(_request_of(call), ensure_ascii=False) for call in result.calls[:REPRODUCTION_CALLS]]
    more = len(result.calls) - len(lines)
    shown = "\n".join([*(f"# the kit: {action}" for action in case.kit_actions), *lines]) + \
        (f"\n... and {more} more" if more > 0 else "")
    return (f"\nreproduction ({len(result.calls)} calls from a fresh runtime, as protocol requests):\n{shown}"
            f"\nreplay: {command} --case {shlex.quote(case.id)}")


def _request_of(call: dict[str, Any]) -> dict[str, Any]:
    request: dict[str, Any] = {"op": call["op"], "args": call["args"]}
    if call.get("handle"):
        request["handle"] = call["handle"]
    return request


def build_cases(spec: Spec, inputs: SuiteInputs, info: ImplementationInfo, *,
                walk_examples: int = 40) -> tuple[list[Case], list[Unreachable]]:
    """The whole suite for an implementation: table cells, behaviours, random walk."""
    plans, unreachable = plan_suite(spec, inputs, info.capabilities.operations)
    cases = [*table_cases(plans, inputs), *behaviour_cases(spec, inputs)]
    if walk_examples:
        cases.append(walk_case(spec, inputs, examples=walk_examples))
    return cases, unreachable


def run_suite(implementation: Implementation, inputs: SuiteInputs, *, case_globs: Iterable[str] = (),
              expect_fail: Iterable[str] = (), walk_examples: int = 40,
              progress: Callable[[CaseResult], None] | None = None, replay: str = "") -> RunResult:
    """Every case (or those matching case_globs); `replay`: the options a replay of a failure needs
    (e.g. " --model PATH"), appended to the command each failure prints."""
    spec = load_spec()
    started = time.perf_counter()
    info = implementation.info
    cases, unreachable = build_cases(spec, inputs, info, walk_examples=walk_examples)
    globs, expected_failures = list(case_globs), list(expect_fail)
    results: list[CaseResult] = []

    def run_so_far(stopped: str | None = None) -> RunResult:
        return RunResult(
            implementation=implementation.label,
            info={"name": info.name, "version": info.version, "capabilities": info.capabilities.to_json(),
                  "spec_version": info.spec_version},
            inputs=inputs.describe(), results=results, unreachable=unreachable,
            seconds=time.perf_counter() - started, spec_version=spec.version, stopped=stopped)

    try:
        for case in cases:
            if globs and not _matches(case.id, globs):
                continue
            result = run_case(case, implementation, replay)
            if _matches(case.id, expected_failures):
                result.expected_to_fail = True
                result.status = XPASS if result.status == PASS else XFAIL
            results.append(result)
            if progress is not None:
                progress(result)
    except KeyboardInterrupt as interrupt:
        raise SuiteStopped(run_so_far("interrupted"), interrupt) from None
    except ImplementationUnusable as unusable:
        raise SuiteStopped(run_so_far(str(unusable)), unusable) from None
    for missing in unreachable:
        if globs and not _matches(missing.id, globs):
            continue
        result = CaseResult(missing.id, CELL, missing.rule, NOT_SUPPORTED, missing.why, cell=missing.cell)
        if _matches(result.id, expected_failures):
            result.expected_to_fail, result.status = True, XFAIL
        results.append(result)
    return run_so_far()
