"""The docs name the machine a kernel-set claim is about: this machine is AVX2-only (docs/benchmarks.md's
int8-peak section), so no passage may say the AVX-512 set is what "this machine" runs; a passage about
the earlier AVX-512 machine says so and when."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parents[1] / "docs"
# The hand-written prose: the architecture and the benchmark page's fragments (the page itself is
# stitched from them).
PROSE = [DOCS / "architecture.md", *sorted((DOCS / "benchmarks").glob("*.md"))]
AVX512 = re.compile(r"AVX-?512|VNNI", re.IGNORECASE)
THIS_MACHINE = re.compile(r"\bthis machine\b", re.IGNORECASE)
# A sentence may name both to say the AVX-512 set does not run here.
SAYS_AVX2_HERE = re.compile(r"\bAVX2\b|cannot run on this machine", re.IGNORECASE)


def sentences(text: str) -> list[str]:
    """The text's sentences, each on one line (prose is wrapped; tables are rows)."""
    flowing = re.sub(r"(?<!\n)\n(?![\n|#*-])", " ", text)
    return [part.strip() for part in re.split(r"(?<=[.!?])\s+|\n", flowing) if part.strip()]


@pytest.mark.parametrize("path", PROSE, ids=lambda path: str(path.relative_to(DOCS)))
def test_no_passage_says_this_machine_runs_the_avx512_set(path):
    wrong = [sentence for sentence in sentences(path.read_text(encoding="utf-8"))
             if AVX512.search(sentence) and THIS_MACHINE.search(sentence)
             and not SAYS_AVX2_HERE.search(sentence)]
    assert not wrong, f"{path.name} says this machine runs AVX-512 (it is AVX2-only): {wrong}"
