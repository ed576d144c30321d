"""Every stored piece of evidence follows its schema: each results.json under docs/conformance/ (with its
provenance block) and each benchmark record under docs/benchmarks/, so a report or page rendered from
them never meets a field it does not know."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ggufsm.conformance.provenance import RESULTS_SCHEMA_PATH, validate_against
from ggufsm.reference.bench.record import SCHEMA_PATH as RECORD_SCHEMA_PATH

DOCS = Path(__file__).resolve().parents[1] / "docs"
RESULTS = sorted((DOCS / "conformance").rglob("results.json"))
RECORDS = sorted((DOCS / "benchmarks").glob("*.json"))


def test_there_is_stored_evidence_to_check():
    assert RESULTS and RECORDS


@pytest.mark.parametrize("path", RESULTS, ids=lambda path: str(path.relative_to(DOCS)))
def test_every_stored_conformance_result_follows_the_results_schema(path):
    validate_against(json.loads(path.read_text(encoding="utf-8")), RESULTS_SCHEMA_PATH)


@pytest.mark.parametrize("path", RECORDS, ids=lambda path: str(path.relative_to(DOCS)))
def test_every_stored_benchmark_record_follows_the_record_schema(path):
    validate_against(json.loads(path.read_text(encoding="utf-8")), RECORD_SCHEMA_PATH)
