"""The vocabulary's token -> id index is built in the core (`_core.string_index`) at its final size;
it must be exactly the index Python's dict(zip(tokens, ids)) builds."""

from __future__ import annotations

import pytest

from ggufsm import _core
from ggufsm.reference.tokenizers.tokenizer import _token_index

VOCABULARY = ["<unk>", "<s>", "</s>", "▁the", "é", "日本", "<0x0A>", "\U0001F600", "a" * 300, "\ud800", "[EMPTY_10]"]


def test_the_core_token_index_is_the_index_dict_zip_builds():
    index = _token_index(VOCABULARY)
    assert index == dict(zip(VOCABULARY, range(len(VOCABULARY)), strict=True))
    assert list(index) == VOCABULARY  # in id order, as dict(zip) keeps it
    assert all(type(token_id) is int for token_id in index.values())


def test_the_core_string_index_lets_a_later_repeat_win_like_dict_zip_so_the_repeat_check_sees_it():
    tokens = ["a", "b", "a"]
    assert _core.string_index(tokens) == dict(zip(tokens, range(3), strict=True)) == {"a": 2, "b": 1}


@pytest.mark.parametrize("bad", [[b"bytes"], ["a", 1], ["a", None]])
def test_the_core_string_index_refuses_anything_but_str_instead_of_indexing_it(bad):
    with pytest.raises(TypeError, match="not str"):
        _core.string_index(bad)


def test_the_core_string_index_of_an_empty_list_is_empty():
    assert _core.string_index([]) == {}


def test_keep_first_lets_the_first_listing_win_like_the_reversed_dict_zip_the_merge_ranks_were():
    merges = ["a b", "c d", "a b", "e f"]
    reversed_zip = dict(zip(reversed(merges), range(len(merges) - 1, -1, -1), strict=True))
    assert _core.string_index(merges, keep_first=True) == reversed_zip == {"a b": 0, "c d": 1, "e f": 3}


@pytest.mark.parametrize(("strings", "expected"), [
    (["a b", "ab c", "Ġ w"], -1),
    (["a b", "ab", "c d"], 1),          # no space at all
    ([" ab", "a b"], 0),                # a space only at the start
    (["a b", ""], 1),                   # empty
    (["日 本", "\U0001F600 x", "\U0001F600x"], 2),  # code points, not bytes
])
def test_first_lacking_finds_the_first_string_without_the_character_after_its_start(strings, expected):
    assert _core.first_lacking(strings, " ", 1) == expected
    python = next((i for i, s in enumerate(strings) if s.find(" ", 1) < 0), -1)
    assert python == expected


@pytest.mark.parametrize("bad", [[b"a b"], ["a b", 1]])
def test_first_lacking_refuses_anything_but_str(bad):
    with pytest.raises(TypeError, match="not str"):
        _core.first_lacking(bad, " ", 1)


@pytest.mark.parametrize("bad", [7, 0, None, b"", b"ab", 1.5])
def test_a_token_that_is_not_a_str_is_named_by_its_id_even_when_falsy(bad):
    from vocabularies import bpe_metadata

    from ggufsm.reference.tokenizers.tokenizer import tokenizer_from_metadata
    from ggufsm.spec.errors import InvalidModel

    metadata = bpe_metadata()
    tokens = list(metadata["tokenizer.ggml.tokens"])
    tokens[5] = bad
    with pytest.raises(InvalidModel, match=rf"tokens\[5\] is {type(bad).__name__}, not a string"):
        tokenizer_from_metadata({**metadata, "tokenizer.ggml.tokens": tokens})


def test_empty_tokens_get_llamacpp_names_and_str_subclasses_are_indexed_as_str():
    from vocabularies import bpe_metadata

    from ggufsm.reference.tokenizers.tokenizer import tokenizer_from_metadata

    class Text(str):
        pass

    metadata = bpe_metadata()
    tokens = [Text(token) for token in metadata["tokenizer.ggml.tokens"]]
    tokens[7] = ""
    tokenizer = tokenizer_from_metadata({**metadata, "tokenizer.ggml.tokens": tokens})
    assert tokenizer.tokens[7] == "[EMPTY_7]" and tokenizer.token_to_id["[EMPTY_7]"] == 7
    assert tokenizer.token_to_id[tokens[200]] == 200
