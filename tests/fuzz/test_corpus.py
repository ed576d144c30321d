"""The loader's fuzz corpus, replayed in every test run: each input ends in a named error or a readable model."""

from __future__ import annotations

from pathlib import Path

import pytest
from loader_target import check
from make_corpus import SEED_KINDS, main

NAMES = ("valid", *SEED_KINDS)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    directory = tmp_path_factory.mktemp("loader-corpus")
    main(str(directory))
    return directory


def test_the_corpus_is_every_seed_and_small(corpus):
    paths = sorted(corpus.iterdir())
    assert sorted(path.stem for path in paths) == sorted(NAMES)
    assert sum(path.stat().st_size for path in paths) < 2**20


@pytest.mark.parametrize("name", NAMES)
def test_every_corpus_input_ends_in_a_named_error_or_a_readable_model(corpus, name):
    check((corpus / f"{name}.gguf").read_bytes())
