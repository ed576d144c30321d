"""SentencePiece rules (score-ordered merges, byte fallback, the space prefix) on a tiny vocabulary."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from vocabularies import spm_metadata

from ggufsm.reference.tokenizers.spm import SPACE, SpmTokenizer
from ggufsm.reference.tokenizers.tokenizer import tokenizer_from_metadata
from ggufsm.spec.errors import InvalidModel

PIECES = {"▁": -1.0, "a": -2.0, "b": -2.0, "ab": -3.0, "ba": -1.5, "bb": -2.0, "▁a": -2.5, "<x>": 0.0}


def make(**options) -> SpmTokenizer:
    return tokenizer_from_metadata(spm_metadata(PIECES, **options))


def ids_of(tokenizer, *tokens):
    return [tokenizer.token_to_id[token] for token in tokens]


def test_the_factory_builds_a_sentencepiece_tokenizer_for_llama_files():
    assert isinstance(make(), SpmTokenizer)


def test_the_higher_scored_pair_merges_first():
    tokenizer = make()
    # 'ba' (-1.5) beats 'ab' (-3.0); then 'a'+'ba' is no token.
    assert tokenizer.encode("aba", add_special=False) == ids_of(tokenizer, "a", "ba")


def test_equal_scores_merge_leftmost_first():
    tokenizer = make()
    assert tokenizer.encode("bbb", add_special=False) == ids_of(tokenizer, "bb", "b")


def test_spaces_are_written_as_the_lower_block():
    tokenizer = make()
    assert tokenizer.encode(" a b", add_special=False) == ids_of(tokenizer, "▁a", "▁", "b")


def test_a_literal_lower_block_comes_back_as_a_space_as_in_sentencepiece():
    tokenizer = make()
    assert tokenizer.decode(tokenizer.encode("a\u2581b")) == "a b"


def test_characters_outside_the_vocabulary_fall_back_to_byte_tokens():
    tokenizer = make()
    assert tokenizer.encode("é", add_special=False) == ids_of(tokenizer, "<0xC3>", "<0xA9>")
    assert tokenizer.decode(tokenizer.encode("é")) == "é"


def test_bos_is_added_by_default():
    tokenizer = make()
    assert tokenizer.encode("a") == [tokenizer.bos_id, *ids_of(tokenizer, "a")]


def test_the_space_prefix_goes_before_the_text_and_after_each_special_token():
    tokenizer = make(add_space_prefix=True)
    assert tokenizer.encode("a<x>a", add_special=False) == ids_of(tokenizer, "▁a", "<x>", "▁a")


def test_decode_drops_the_space_prefix_it_added():
    tokenizer = make(add_space_prefix=True)
    assert tokenizer.decode(tokenizer.encode("ab a")) == "ab a"


def test_without_the_space_prefix_text_starts_as_is():
    tokenizer = make(add_space_prefix=False)
    assert tokenizer.encode("a", add_special=False) == ids_of(tokenizer, "a")


@settings(max_examples=200, deadline=None)
@given(st.text(st.characters(blacklist_characters=SPACE, blacklist_categories=("Cs",))), st.booleans())
def test_decoding_the_encoding_gives_the_text_back(text, add_space_prefix):
    tokenizer = _shared[add_space_prefix]
    assert tokenizer.decode(tokenizer.encode(text, parse_special=False)) == text


_shared = {flag: make(add_space_prefix=flag) for flag in (False, True)}


def test_scores_shorter_than_the_vocabulary_are_invalid():
    metadata = spm_metadata(PIECES)
    metadata["tokenizer.ggml.scores"] = metadata["tokenizer.ggml.scores"][:5]
    with pytest.raises(InvalidModel, match="scores has 5 entries"):
        tokenizer_from_metadata(metadata)


def test_a_byte_token_not_spelled_as_a_byte_is_invalid_when_the_tokenizer_is_built():
    """At load, not when a generated token is first decoded (a generate has no outcome for it)."""
    metadata = spm_metadata(PIECES)
    metadata["tokenizer.ggml.tokens"] = [t if t != "<0x41>" else "<0xZZ>" for t in metadata["tokenizer.ggml.tokens"]]
    bad = metadata["tokenizer.ggml.tokens"].index("<0xZZ>")
    with pytest.raises(InvalidModel, match=rf"tokens\[{bad}\] is typed BYTE") as raised:
        tokenizer_from_metadata(metadata)
    assert "<0xZZ>" not in str(raised.value)  # ids, never vocabulary text
