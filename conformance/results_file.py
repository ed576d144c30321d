"""A run's stored ``results.json``, read back: everything its reports are made from.

``ggufsm conformance report DIR`` re-renders the Markdown, JUnit XML and SVG
of a run from its ``results.json`` alone (no implementation, no re-run);
``ggufsm conformance compare`` reads several.
"""

from __future__ import annotations

import json
from dataclasses import fields
from pathlib import Path
from typing import Any

from ggufsm.conformance.run.runner import CaseResult, RunResult

RESULTS_NAME = "results.json"


def results_path(path: Path) -> Path:
    """A results.json, given it or the folder holding it."""
    path = Path(path)
    return path / RESULTS_NAME if path.is_dir() else path


def load_records(path: Path) -> list[dict[str, Any]]:
    records = json.loads(results_path(path).read_text(encoding="utf-8"))
    if not isinstance(records, list):
        raise TypeError(f"{results_path(path)}: expected a list of run records")
    return records


def run_of(record: dict[str, Any]) -> RunResult:
    """The RunResult a record was written from (the cases as they ran; unreachable cells are among them)."""
    names = {field.name for field in fields(CaseResult)}
    results = [CaseResult(**{key: value for key, value in case.items() if key in names}) for case in record["cases"]]
    return RunResult(implementation=record["implementation"], info=record["info"], inputs=record["inputs"],
                     results=results, unreachable=[], seconds=float(record["seconds"]),
                     spec_version=record["spec_version"], stopped=record.get("stopped"))


def load_runs(path: Path) -> tuple[list[RunResult], list[dict[str, Any] | None]]:
    records = load_records(path)
    return [run_of(record) for record in records], [record.get("provenance") for record in records]


def rerender(directory: Path) -> list[Path]:
    """Write a run's reports again from its results.json alone."""
    from ggufsm.conformance.report import write_reports

    runs, provenance = load_runs(directory)
    blocks = [block for block in provenance if block]
    return write_reports(runs, Path(directory), provenance=provenance if len(blocks) == len(runs) else None)
