"""The vocabulary's token -> id index and the BPE merge ranks are held in the core (`_core.StringTable`:
one buffer, offsets and a hash index, built without a Python object per entry); it must answer exactly
as the Python dict over the same list did (dict(zip(...)), or its reversed form for keep_first)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from ggufsm import _core

VOCABULARY = ["<unk>", "<s>", "</s>", "▁the", "é", "日本", "<0x0A>", "\U0001F600", "a" * 300, "[EMPTY_9]"]


def test_the_core_string_table_answers_as_the_dict_zip_index_does():
    table = _core.string_table_from_list(VOCABULARY)
    index = dict(zip(VOCABULARY, range(len(VOCABULARY)), strict=True))
    assert len(table) == len(VOCABULARY) and table.first_repeat() is None
    assert all(table[token] == token_id and table.get(token) == token_id and token in table
               for token, token_id in index.items())
    assert [table.text(i) for i in range(len(table))] == VOCABULARY
    assert all(type(table[token]) is int for token in VOCABULARY)
    assert table.byte_lengths().tolist() == [len(token.encode()) for token in VOCABULARY]


def test_the_byte_lengths_of_given_positions_come_in_their_order_and_a_bad_position_is_refused():
    table = _core.string_table_from_list(VOCABULARY)
    positions = [len(VOCABULARY) - 1, 0, 2, 2]
    assert table.byte_lengths(np.array(positions)).tolist() == [len(VOCABULARY[i].encode()) for i in positions]
    assert table.byte_lengths([]).tolist() == []
    for bad in ([len(VOCABULARY)], [-1]):
        with pytest.raises(IndexError, match="position out of range"):
            table.byte_lengths(bad)


@pytest.mark.parametrize("absent", ["", "▁th", "日", "a" * 299, "\ud800", b"<s>", 3, None])
def test_a_string_the_table_lacks_or_a_key_that_is_not_a_str_is_simply_absent(absent):
    table = _core.string_table_from_list(VOCABULARY)
    assert absent not in table and table.get(absent) is None and table.get(absent, -1) == -1
    with pytest.raises(KeyError):
        table[absent]


@given(st.lists(st.text(st.characters(blacklist_categories=("Cs",)), max_size=6), max_size=60), st.booleans())
def test_the_core_string_table_is_the_dict_python_builds_over_any_list(strings, keep_first):
    table = _core.string_table_from_list(strings, keep_first=keep_first)
    ordered = reversed(list(enumerate(strings))) if keep_first else enumerate(strings)
    index = {text: i for i, text in ordered}
    assert all(table.get(text) == i for text, i in index.items())
    repeat = next(((i, index_before[text]) for index_before in [{}] for i, text in enumerate(strings)
                   if text in index_before or index_before.update({text: i})), None)
    assert table.first_repeat() == repeat or (repeat is None and table.first_repeat() is None)


def test_the_first_repeat_names_the_later_listing_and_the_latest_earlier_one():
    assert _core.string_table_from_list(["a", "b", "a", "a"]).first_repeat() == (2, 0)
    assert _core.string_table_from_list(["x", "b", "b"], keep_first=True).first_repeat() == (2, 1)


def test_empty_entries_are_named_as_llamacpp_names_them_only_when_asked():
    assert _core.string_table_from_list(["a", "", "b"], name_empty=True).text(1) == "[EMPTY_1]"
    assert _core.string_table_from_list(["a", "", "b"]).text(1) == ""


@pytest.mark.parametrize("bad", [[b"bytes"], ["a", 1], ["a", None]])
def test_the_core_string_table_refuses_anything_but_str_naming_the_item(bad):
    with pytest.raises(TypeError, match=rf"item {len(bad) - 1} is .*not str"):
        _core.string_table_from_list(bad)


def test_the_core_string_table_refuses_a_str_with_no_utf8_naming_the_item():
    with pytest.raises(ValueError, match="item 1 is not valid Unicode"):
        _core.string_table_from_list(["a", "\ud800"])


def test_occurring_lists_the_given_positions_whose_entry_is_in_the_text_in_the_given_order():
    table = _core.string_table_from_list(VOCABULARY)
    assert table.occurring([5, 0, 3, 4], "x▁the<unk>日本") == [5, 0, 3]
    assert table.occurring([], "abc") == []
    with pytest.raises(IndexError):
        table.occurring([len(VOCABULARY)], "abc")


@pytest.mark.parametrize(("strings", "expected"), [
    (["a b", "ab c", "Ġ w"], -1),
    (["a b", "ab", "c d"], 1),          # no space at all
    ([" ab", "a b"], 0),                # a space only at the start
    (["a b", ""], 1),                   # empty
    (["日 本", "\U0001F600 x", "\U0001F600x"], 2),  # characters, not bytes
    (["é"], 0),                         # one character of two bytes
])
def test_first_lacking_space_finds_the_first_merge_without_a_space_after_its_first_character(strings, expected):
    assert _core.string_table_from_list(strings, keep_first=True).first_lacking_space() == expected
    assert next((i for i, s in enumerate(strings) if s.find(" ", 1) < 0), -1) == expected


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
