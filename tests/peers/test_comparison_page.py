"""The published peer reports: every results.json carries a provenance block that follows its schema, each
report re-renders from its results.json alone, and the comparison page is generated from them (no peer needed:
these read stored files)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from ggufsm.conformance import compare, provenance
from ggufsm.conformance.results_file import rerender

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs" / "conformance"
PAGE = DOCS / "README.md"
FINDINGS = DOCS / "findings.yaml"


def stored_results() -> list[Path]:
    """As the page's command names them: docs/conformance/*/*/results.json, in sorted order."""
    return sorted(DOCS.glob("*/*/results.json"))


def test_every_stored_results_file_carries_a_provenance_block_that_follows_the_schema():
    assert stored_results(), "no stored peer results"
    for path in stored_results():
        for record in json.loads(path.read_text()):
            assert "provenance" in record, f"{path}: {record['implementation']} has no provenance block"
            provenance.validate(record["provenance"])


def test_every_fact_is_marked_observed_reported_or_estimated():
    for path in stored_results():
        for record in json.loads(path.read_text()):
            block = record["provenance"]
            facts = [*block["revision"].values(), *block["environment"].values(), *block["assumptions"].values(),
                     *block["artifact"]["implementation"].values()]
            assert all(fact["kind"] in provenance.KINDS for fact in facts)
            # what an implementation says of itself is never passed off as measured
            assert block["artifact"]["implementation"]["version"]["kind"] == provenance.REPORTED


def test_the_comparison_page_is_the_one_generated_from_the_stored_results():
    block = compare.page(stored_results(), findings=FINDINGS, base=DOCS)
    stored = PAGE.read_text(encoding="utf-8")
    assert compare.splice(stored, block) == stored, (
        "docs/conformance/README.md is out of date: ggufsm conformance compare docs/conformance/*/*/results.json "
        "--findings docs/conformance/findings.yaml --output docs/conformance/README.md")


def test_a_finding_is_refused_when_its_case_does_not_fail_in_the_stored_results(tmp_path):
    results = stored_results()[0]
    record = json.loads(results.read_text())[0]
    passing = next(case["id"] for case in record["cases"] if case["status"] == "pass")
    findings = tmp_path / "findings.yaml"
    findings.write_text(json.dumps({record["info"]["name"]: [{"finding": "claimed", "cases": [passing]}]}))
    with pytest.raises(compare.StaleFinding, match="does not fail"):
        compare.page([results], findings=findings, base=tmp_path)


def test_a_finding_that_names_its_input_set_links_the_runs_on_that_set_and_is_refused_where_it_does_not_fail(tmp_path):
    copies = {}
    for input_set in ("aaa-first", "zzz-second"):
        folder = tmp_path / "impl" / input_set
        folder.mkdir(parents=True)
        copies[input_set] = folder / "results.json"
        copies[input_set].write_text((DOCS / "llama-cpp-python" / "tiny-fixtures" / "results.json").read_text())
    record = json.loads(copies["aaa-first"].read_text())[0]
    failing = next(case["id"] for case in record["cases"] if case["status"] == "fail")
    name = record["info"]["name"]
    findings = tmp_path / "findings.yaml"
    findings.write_text(json.dumps({name: [{"finding": "shown on one set", "input_set": "zzz-second",
                                            "cases": [failing]}]}))
    block = compare.page(list(copies.values()), findings=findings, base=tmp_path)
    assert "(impl/zzz-second/summary.md) (zzz-second)" in block
    assert "(aaa-first): `" not in block
    findings.write_text(json.dumps({name: [{"finding": "shown on one set", "input_set": "no-such-set",
                                            "cases": [failing]}]}))
    with pytest.raises(compare.StaleFinding, match="on no-such-set"):
        compare.page(list(copies.values()), findings=findings, base=tmp_path)


def report_of_the_current_spec(tmp_path: Path) -> Path:
    """A stored report of a run against the table as it is now, else one written from a fresh run of the
    reference (a few cases). Coverage is measured against the table in the repository, so a report of an
    older spec (GPT4All's tiny-fixtures-pre-refact run is kept from spec 1.1) cannot render again byte for byte."""
    from ggufsm.conformance.adapter import InProcessImplementation, load_factory
    from ggufsm.conformance.inputs import prepare_inputs
    from ggufsm.conformance.report import write_reports
    from ggufsm.conformance.run.runner import run_suite
    from ggufsm.spec import load_spec

    version = load_spec().version
    for path in stored_results():
        if {record["spec_version"] for record in json.loads(path.read_text())} == {version}:
            return path.parent
    reference = "python:ggufsm.conformance.adapters.reference:make_adapter"
    run = run_suite(InProcessImplementation(load_factory(reference), reference), prepare_inputs(tmp_path / "inputs"),
                    case_globs=["Ready.*"], walk_examples=0)
    write_reports([run], tmp_path / "fresh")
    return tmp_path / "fresh"


def test_a_report_is_rendered_again_from_its_results_json_alone(tmp_path):
    source = report_of_the_current_spec(tmp_path)
    copy = tmp_path / f"{source.name}-again"
    copy.mkdir()
    shutil.copy(source / "results.json", copy / "results.json")
    rerender(copy)
    assert (copy / "summary.md").read_text() == (source / "summary.md").read_text()
    assert (copy / "junit.xml").read_bytes() == (source / "junit.xml").read_bytes()


def test_a_runs_provenance_hashes_its_model_files_and_keeps_self_reports_apart(tmp_path):
    model = tmp_path / "model.gguf"
    model.write_bytes(b"GGUF" + bytes(60))
    block = provenance.collect(impl="ggufsm serve-stdio", info={"name": "ggufsm-reference", "version": "0.1.0"},
                               inputs={"model": str(model), "missing_model": str(tmp_path / "absent.gguf")},
                               options={"timeout_s": 60.0}, skipped=["Ready.state"], load_before=[1.0, 1.0, 1.0])
    provenance.validate(block)
    files = {entry["role"]: entry for entry in block["artifact"]["model_files"]}
    assert files["model"]["sha256"] == {"value": provenance.sha256_of(model), "kind": "observed", "how": "hashed"}
    assert files["missing_model"]["absent"]["value"] is True
    assert block["artifact"]["implementation"]["version"]["kind"] == "reported"
    assert block["environment"]["cores"]["kind"] == "observed"
    assert block["assumptions"]["skipped"]["value"] == ["Ready.state"]


def test_an_implementation_run_beside_a_peer_links_to_its_own_report_when_one_is_given(tmp_path):
    """A peer's results.json also holds the reference's run (`--impl PEER --impl "ggufsm serve-stdio"`): the
    reference's row and diagram come from the reference's own report, whichever file is read first, and
    from the peer's folder only when the reference has no report of its own."""
    import dataclasses

    from ggufsm.conformance.adapter import InProcessImplementation, load_factory
    from ggufsm.conformance.adapters.reference import ReferenceAdapter
    from ggufsm.conformance.inputs import prepare_inputs
    from ggufsm.conformance.report import write_reports
    from ggufsm.conformance.run.runner import run_suite

    impl = "python:ggufsm.conformance.adapters.reference:make_adapter"
    reference = run_suite(InProcessImplementation(load_factory(impl), impl), prepare_inputs(tmp_path / "inputs"),
                          case_globs=["Ready.state"], walk_examples=0)
    peer = dataclasses.replace(reference, info={**reference.info, "name": "some-peer"})
    write_reports([peer, reference], tmp_path / "some-peer" / "tiny-fixtures")
    write_reports([reference], tmp_path / "reference" / "tiny-fixtures")
    beside, own = (tmp_path / folder / "tiny-fixtures" / "results.json" for folder in ("some-peer", "reference"))

    def reference_links(results: list[Path]) -> list[str]:
        lines = compare.page(results, findings=None, base=tmp_path).splitlines()
        row = next(line for line in lines if line.startswith(f"| {ReferenceAdapter.name} "))
        diagram = next(line for line in lines if line.startswith("<tr><th>tiny-fixtures</th>"))
        return [row, diagram.split("<td>")[-1]]

    for order in ([beside, own], [own, beside]):
        for link in reference_links(order):
            assert "reference/tiny-fixtures/" in link and "some-peer/" not in link, link
    assert all("some-peer/tiny-fixtures/" in link for link in reference_links([beside]))
