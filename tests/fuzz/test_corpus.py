"""The loader's fuzz corpus, replayed in every test run: each input ends in a named error or a readable model."""

from __future__ import annotations

from pathlib import Path

import pytest
from loader_target import check

CORPUS = sorted((Path(__file__).parent / "corpus").iterdir())


def test_the_corpus_is_there_and_small():
    assert CORPUS and sum(path.stat().st_size for path in CORPUS) < 2**20


@pytest.mark.parametrize("path", CORPUS, ids=[path.name for path in CORPUS])
def test_every_corpus_input_ends_in_a_named_error_or_a_readable_model(path):
    check(path.read_bytes())
