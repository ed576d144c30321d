"""docs/benchmarks.md is generated from the fragments and records in docs/benchmarks/ and is up to date;
every record is shown once, a fragment naming a missing record is an error, and a comparison against a
limit reads as the distance to it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ggufsm.cli import main
from ggufsm.reference.bench.record import Record, peer_binary_facts
from ggufsm.reference.bench.report import ReportError, provenance_summary, render_directory, render_record

DOCS = Path(__file__).resolve().parents[2] / "docs"


def test_docs_benchmarks_md_is_the_generated_page():
    expected = render_directory(DOCS / "benchmarks")
    assert (DOCS / "benchmarks.md").read_text(encoding="utf-8") == expected, (
        "docs/benchmarks.md is stale: run `ggufsm bench report docs/benchmarks --output docs/benchmarks.md`")


def _stored(directory: Path, name: str) -> dict:
    record = Record("decode", {"repeat": 2, "threads": 2}, argv=["bench", "decode", "--repeat", "2"])
    for tok_s, gbs in ((100.0, 20.0), (120.0, 30.0)):
        record.sample("decode in place", tok_s, "tok/s")
        record.limit("read bandwidth", gbs, "GB/s")
        record.sample("decode llama.cpp", tok_s / 2, "tok/s", runner="llama.cpp")
    record.compare("in place / read bandwidth", "decode in place", "read bandwidth", factor=0.1)
    record.compare("in place / llama.cpp", "decode in place", "decode llama.cpp")
    return record.write(directory / name)


def test_a_record_renders_its_series_samples_and_comparisons_a_limit_as_a_share(tmp_path):
    data = _stored(tmp_path, "decode.json")
    text = render_record(data, "decode.json")
    assert "| decode in place | ggufsm | tok/s | 2 | 110.0 | 100.0 - 120.0 | 100.0, 120.0 |" in text
    # The bandwidth sampled beside each run shows in its comparison's row (all its samples are in the JSON).
    assert "| read bandwidth" not in text
    assert "| in place / read bandwidth | 45% | 40% - 50% | limit 25.00 GB/s |" in text   # 100 x 0.1 / 20, 120 x 0.1 / 30
    assert "| in place / llama.cpp | 2.00x | 2.00x - 2.00x | llama.cpp 55.00 tok/s |" in text
    assert "`ggufsm bench decode --repeat 2` (decode.json)" in text


def test_the_page_stitches_fragments_in_name_order_and_replaces_each_marker(tmp_path):
    _stored(tmp_path, "decode.json")
    (tmp_path / "20-b.md").write_text("## B\n\n<!-- record: decode.json -->\n\nclosing prose\n")
    (tmp_path / "10-a.md").write_text("# A\n\nprose\n")
    page = render_directory(tmp_path)
    assert page.index("# A") < page.index("## B") < page.index("| decode in place |") < page.index("closing prose")
    assert "<!-- record:" not in page


def test_a_record_no_fragment_shows_is_an_error(tmp_path):
    _stored(tmp_path, "decode.json")
    (tmp_path / "10-a.md").write_text("# A\n")
    with pytest.raises(ReportError, match="records no fragment shows: decode.json"):
        render_directory(tmp_path)


def test_a_fragment_naming_a_missing_record_is_an_error_and_the_command_says_so(tmp_path, capsys):
    (tmp_path / "10-a.md").write_text("# A\n\n<!-- record: gone.json -->\n")
    with pytest.raises(ReportError, match="gone.json, which is not in"):
        render_directory(tmp_path)
    assert main(["bench", "report", str(tmp_path)]) == 2
    assert "ggufsm bench report: a fragment shows gone.json" in capsys.readouterr().err


def test_a_record_shown_twice_is_an_error(tmp_path):
    _stored(tmp_path, "decode.json")
    (tmp_path / "10-a.md").write_text("<!-- record: decode.json -->\n\n<!-- record: decode.json -->\n")
    with pytest.raises(ReportError, match="shown twice"):
        render_directory(tmp_path)


def test_the_command_writes_the_page(tmp_path):
    folder = tmp_path / "benchmarks"
    folder.mkdir()
    _stored(folder, "decode.json")
    (folder / "10-a.md").write_text("# A\n\n<!-- record: decode.json -->\n")
    out = tmp_path / "benchmarks.md"
    assert main(["bench", "report", str(folder), "--output", str(out)]) == 0
    assert out.read_text() == render_directory(folder)
    assert json.loads((folder / "decode.json").read_text())["bench"] == "decode"


def test_a_peer_driven_in_process_is_described_by_its_reported_version_not_as_absent():
    record = json.loads((DOCS / "benchmarks" / "first-token-gemma3-quiet4.json").read_text())
    summary = provenance_summary(record["provenance"])
    assert "peer `llama-cpp-python` (llama.cpp 0.5.0-dev (reported)" in summary
    assert "(absent)" not in summary


def test_a_peer_binary_missing_when_recorded_is_described_as_absent(tmp_path):
    record = json.loads((DOCS / "benchmarks" / "decode-smollm2-quiet4.json").read_text())
    record["provenance"]["artifact"]["peers"] = {"llama-bench": peer_binary_facts(tmp_path / "nothing")}
    assert "peer `llama-bench` (absent)" in provenance_summary(record["provenance"])
