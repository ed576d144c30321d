"""The protocol fuzz target's committed corpus replayed through their checks (no atheris needed): every input the
fuzzer found interesting stays a regression test."""

from __future__ import annotations

import pytest
from fuzz_protocol import CORPUS, ProtocolTarget


@pytest.fixture(scope="module")
def protocol_target():
    return ProtocolTarget()


@pytest.mark.parametrize("path", sorted(CORPUS.iterdir()), ids=lambda path: path.name[:16])
def test_every_protocol_corpus_input_gets_one_valid_answer_per_line(protocol_target, path):
    protocol_target(path.read_bytes())
