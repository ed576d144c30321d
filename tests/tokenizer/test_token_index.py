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
