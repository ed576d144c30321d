"""Byte-level BPE rules, on a vocabulary small enough to check by hand."""

from __future__ import annotations

import functools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from vocabularies import BYTE_TO_CHAR, CONTROL, bpe_metadata

from ggufsm.reference.tokenizers.bpe import BpeTokenizer
from ggufsm.reference.tokenizers.tokenizer import tokenizer_from_metadata
from ggufsm.spec.errors import InvalidInput, InvalidModel, UnsupportedModel


def ids_of(tokenizer, *tokens):
    return [tokenizer.token_to_id[token] for token in tokens]


def spelled(text: str) -> list[str]:
    """GPT-2's spelling of each UTF-8 byte of text."""
    return [BYTE_TO_CHAR[b] for b in text.encode("utf-8")]


def test_the_factory_builds_a_bpe_tokenizer_for_gpt2_files():
    assert isinstance(tokenizer_from_metadata(bpe_metadata()), BpeTokenizer)


def test_merges_combine_a_word_into_its_vocabulary_token():
    tokenizer = tokenizer_from_metadata(bpe_metadata())
    assert tokenizer.encode("hello world") == ids_of(tokenizer, "hello", "Ġworld")


def test_lower_rank_merges_apply_before_earlier_positions():
    # 'o r' outranks 'Ġ w', so " wor" becomes Ġw + or, never Ġwo + r.
    tokenizer = tokenizer_from_metadata(bpe_metadata(merges=("o r", "Ġ w", "Ġw o")))
    assert tokenizer.encode(" wor") == ids_of(tokenizer, "Ġw", "or")


def test_equal_rank_pairs_merge_leftmost_first():
    tokenizer = tokenizer_from_metadata(bpe_metadata(merges=("a a",)))
    assert tokenizer.encode("aaa") == ids_of(tokenizer, "aa", "a")


def test_a_long_word_merges_like_a_short_one():
    tokenizer = tokenizer_from_metadata(bpe_metadata())
    assert tokenizer.encode("hello" * 2000) == ids_of(tokenizer, "hello") * 2000


def test_bytes_without_merges_are_one_token_each():
    tokenizer = tokenizer_from_metadata(bpe_metadata())
    assert tokenizer.encode("é😀") == ids_of(tokenizer, *spelled("é😀"))


def test_bytes_the_vocabulary_cannot_spell_are_dropped_as_llama_cpp_drops_them():
    metadata = bpe_metadata()
    metadata["tokenizer.ggml.tokens"] = [t if t != BYTE_TO_CHAR[0xA9] else "<no é tail>" for t in metadata["tokenizer.ggml.tokens"]]
    tokenizer = tokenizer_from_metadata(metadata)
    assert tokenizer.missing_bytes == {0xA9}
    assert tokenizer.encode("aé") == ids_of(tokenizer, "a", BYTE_TO_CHAR[0xC3])


def test_control_tokens_are_cut_out_only_when_parsing_specials():
    tokenizer = tokenizer_from_metadata(bpe_metadata())
    assert tokenizer.encode("hello<|end|>hello") == ids_of(tokenizer, "hello", "<|end|>", "hello")
    assert tokenizer.encode("<|end|>", parse_special=False) == ids_of(tokenizer, *spelled("<|end|>"))


def test_user_defined_tokens_are_cut_out_even_without_parsing_specials():
    tokenizer = tokenizer_from_metadata(bpe_metadata())
    assert tokenizer.encode("hello<tag>", parse_special=False) == ids_of(tokenizer, "hello", "<tag>")


def test_the_longest_special_token_is_cut_out_first():
    metadata = bpe_metadata()
    metadata["tokenizer.ggml.tokens"] = [*metadata["tokenizer.ggml.tokens"], "<|end|><tag>"]
    metadata["tokenizer.ggml.token_type"] = [*metadata["tokenizer.ggml.token_type"], CONTROL]
    tokenizer = tokenizer_from_metadata(metadata)
    assert tokenizer.encode("<|end|><tag><tag>") == ids_of(tokenizer, "<|end|><tag>", "<tag>")


@pytest.mark.parametrize("add_bos, add_eos", [(False, False), (True, False), (False, True), (True, True)])
def test_bos_and_eos_are_added_as_the_file_says(add_bos, add_eos):
    tokenizer = tokenizer_from_metadata(bpe_metadata(add_bos=add_bos, add_eos=add_eos))
    body = ids_of(tokenizer, "hello")
    expected = [0] * add_bos + body + [1] * add_eos
    assert tokenizer.encode("hello") == expected
    assert tokenizer.encode("hello", add_special=False) == body


def test_decode_leaves_out_control_tokens_unless_asked():
    tokenizer = tokenizer_from_metadata(bpe_metadata(add_bos=True))
    ids = tokenizer.encode("hello<|end|> world<tag>")
    assert tokenizer.decode(ids) == "hello world<tag>"
    assert tokenizer.decode(ids, special=True) == "<s>hello<|end|> world<tag>"


def test_pieces_are_the_bytes_a_token_stands_for():
    tokenizer = tokenizer_from_metadata(bpe_metadata())
    assert tokenizer.token_to_piece(tokenizer.token_to_id["Ġworld"]) == b" world"
    assert tokenizer.token_to_piece(tokenizer.token_to_id[BYTE_TO_CHAR[0xC3]]) == b"\xc3"


@settings(max_examples=200, deadline=None)
@given(st.text(st.characters(blacklist_categories=("Cs",))))
def test_decoding_the_encoding_gives_the_text_back(text):
    tokenizer = _shared_tokenizer()
    assert tokenizer.decode(tokenizer.encode(text, parse_special=False)) == text


@functools.cache
def _shared_tokenizer():
    return tokenizer_from_metadata(bpe_metadata(add_bos=True, add_eos=True))


def test_out_of_range_ids_are_invalid_input():
    tokenizer = _shared_tokenizer()
    with pytest.raises(InvalidInput, match="outside the vocabulary"):
        tokenizer.decode([tokenizer.vocab_size])
    with pytest.raises(InvalidInput):
        tokenizer.token_to_piece(-1)


def test_a_file_without_merges_is_invalid():
    metadata = bpe_metadata()
    del metadata["tokenizer.ggml.merges"]
    with pytest.raises(InvalidModel, match="tokenizer.ggml.merges"):
        tokenizer_from_metadata(metadata)


def test_a_merge_listed_twice_keeps_its_first_rank():
    # 'o r' listed before and after 'Ġw o': its first listing outranks 'Ġw o' (llama.cpp keeps the first),
    # so " wor" is Ġw + or; ranked by its second listing it would be Ġwo + r, as without the first.
    tokenizer = tokenizer_from_metadata(bpe_metadata(merges=("Ġ w", "o r", "Ġw o", "o r")))
    assert tokenizer.encode(" wor") == ids_of(tokenizer, "Ġw", "or")
    second_only = tokenizer_from_metadata(bpe_metadata(merges=("Ġ w", "Ġw o", "o r")))
    assert second_only.encode(" wor") == ids_of(second_only, "Ġwo", "r")


@pytest.mark.parametrize(("merges", "named"), [
    (("h e", "he", 7), r"merges\[1\] is not two symbols"),
    (("h e", 7, "he"), r"merges\[1\] is int, not a string"),
    ((" he", "h e"), r"merges\[0\] is not two symbols"),
])
def test_the_first_malformed_merge_is_the_one_named(merges, named):
    metadata = bpe_metadata()
    metadata["tokenizer.ggml.merges"] = list(merges)
    with pytest.raises(InvalidModel, match=named):
        tokenizer_from_metadata(metadata)


class CountingMetadata(dict):
    """A file's metadata that counts how often each value is asked for (a file's Metadata converts each time)."""

    def __init__(self, values):
        super().__init__(values)
        self.reads: dict[str, int] = {}

    def __getitem__(self, key):
        self.reads[key] = self.reads.get(key, 0) + 1
        return super().__getitem__(key)

    def get(self, key, default=None):
        return self[key] if key in self else default


def test_building_a_tokenizer_converts_each_metadata_value_once():
    metadata = CountingMetadata(bpe_metadata())
    tokenizer_from_metadata(metadata)
    assert metadata.reads and set(metadata.reads.values()) == {1}


def test_an_unknown_pre_tokenizer_is_unsupported_and_named():
    with pytest.raises(UnsupportedModel, match="'klingon'"):
        tokenizer_from_metadata(bpe_metadata(pre="klingon"))


def test_an_unknown_tokenizer_model_is_unsupported_and_named():
    with pytest.raises(UnsupportedModel, match="'bert'"):
        tokenizer_from_metadata({**bpe_metadata(), "tokenizer.ggml.model": "bert"})


def test_a_file_without_a_tokenizer_model_is_invalid():
    metadata = bpe_metadata()
    del metadata["tokenizer.ggml.model"]
    with pytest.raises(InvalidModel, match="tokenizer.ggml.model"):
        tokenizer_from_metadata(metadata)


def test_a_special_id_outside_the_vocabulary_is_invalid_and_named():
    with pytest.raises(InvalidModel, match=r"bos_token_id = 99999 .*\[0, "):
        tokenizer_from_metadata({**bpe_metadata(), "tokenizer.ggml.bos_token_id": 99999})


def test_a_duplicated_token_is_invalid_and_both_ids_named():
    metadata = bpe_metadata()
    metadata["tokenizer.ggml.tokens"] = [*metadata["tokenizer.ggml.tokens"], "hello"]
    metadata["tokenizer.ggml.token_type"] = [*metadata["tokenizer.ggml.token_type"], 1]
    duplicate = len(metadata["tokenizer.ggml.tokens"]) - 1
    first = metadata["tokenizer.ggml.tokens"].index("hello")
    with pytest.raises(InvalidModel, match=f"token {duplicate} repeats token {first}") as raised:
        tokenizer_from_metadata(metadata)
    assert "hello" not in str(raised.value)  # a load error never quotes vocabulary text


def test_adding_bos_without_a_bos_id_is_invalid():
    metadata = bpe_metadata(add_bos=True)
    del metadata["tokenizer.ggml.bos_token_id"]
    metadata["tokenizer.ggml.tokens"] = metadata["tokenizer.ggml.tokens"][:11]  # llama.cpp's default bos (11) is out of range
    metadata["tokenizer.ggml.token_type"] = metadata["tokenizer.ggml.token_type"][:11]
    metadata["tokenizer.ggml.merges"] = []
    with pytest.raises(InvalidModel, match="add_bos_token is true"):
        tokenizer_from_metadata(metadata)


def test_a_token_type_list_shorter_than_the_vocabulary_is_invalid():
    metadata = bpe_metadata()
    metadata["tokenizer.ggml.token_type"] = metadata["tokenizer.ggml.token_type"][:10]
    with pytest.raises(InvalidModel, match="token_type has 10 entries"):
        tokenizer_from_metadata(metadata)


def test_end_of_generation_ids_are_eos_and_end_of_turn_tokens():
    tokenizer = tokenizer_from_metadata(bpe_metadata())
    assert tokenizer.eot_ids == {tokenizer.eos_id, tokenizer.token_to_id["<|end|>"]}
    assert all(tokenizer.is_control(i) for i in tokenizer.eot_ids)


@pytest.mark.parametrize("text", ["\ud800", "ok \udfff then"])
def test_text_with_a_lone_surrogate_is_invalid_input_naming_where(text):
    with pytest.raises(InvalidInput, match="not valid Unicode.*at character"):
        _shared_tokenizer().encode(text)
