"""`ggufsm bench parse`: both readers measured in one run, the ratio printed, the docs section replaced in place."""

from __future__ import annotations

from ggufsm.cli import main
from ggufsm.conformance.fixtures.tiny_models import write_tiny_llama
from ggufsm.reference.bench.parse import SECTION, write_section


def test_bench_parse_prints_both_readers_and_their_ratio(capsys, tmp_path):
    model = write_tiny_llama(tmp_path / "tiny.gguf")
    assert main(["bench", "parse", str(model), "--repeat", "1"]) == 0
    out = capsys.readouterr().out
    row = next(line for line in out.splitlines() if line.startswith("| tiny.gguf"))
    cells = [cell.strip() for cell in row.strip("|").split("|")]
    reader_ms, ours_ms, ratio = float(cells[2].split()[0].replace(",", "")), float(cells[3].split()[0]), cells[5]
    assert ratio.endswith("x") and reader_ms > 0 and ours_ms > 0
    assert "Command: `ggufsm bench parse" in out


def test_the_markdown_section_is_replaced_and_other_sections_kept(tmp_path):
    markdown = tmp_path / "benchmarks.md"
    markdown.write_text("# Benchmarks\n\n## Runtime\n\nfast\n", encoding="utf-8")
    write_section(markdown, f"{SECTION}\n\nfirst\n")
    write_section(markdown, f"{SECTION}\n\nsecond\n")
    text = markdown.read_text(encoding="utf-8")
    assert text.count(SECTION) == 1 and "second" in text and "first" not in text
    assert "## Runtime\n\nfast\n" in text
