"""The streaming detokenizer holds back UTF-8 split across tokens and agrees with decode."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from vocabularies import BYTE_TO_CHAR, bpe_metadata, spm_metadata

from ggufsm.reference.tokenizers.tokenizer import tokenizer_from_metadata

BPE = tokenizer_from_metadata(bpe_metadata())
SPM = tokenizer_from_metadata(spm_metadata(add_space_prefix=True))


def byte_ids(text: str) -> list[int]:
    return [BPE.token_to_id[BYTE_TO_CHAR[b]] for b in text.encode("utf-8")]


def test_a_character_split_across_tokens_appears_when_its_last_byte_arrives():
    decoder = BPE.stream_decoder()
    assert [decoder.push(i) for i in byte_ids("a😀b")] == ["a", "", "", "", "😀", "b"]
    assert decoder.flush() == ""


def test_an_incomplete_character_at_the_end_is_flushed_as_replacement():
    decoder = BPE.stream_decoder()
    assert decoder.push(byte_ids("é")[0]) == ""
    assert decoder.flush() == "\ufffd"


def test_stray_continuation_bytes_become_replacement_characters_at_once():
    decoder = BPE.stream_decoder()
    assert decoder.push(byte_ids("é")[1]) == "\ufffd"


@settings(max_examples=300, deadline=None)
@given(st.lists(st.integers(0, BPE.vocab_size - 1), max_size=40))
def test_the_stream_concatenates_to_the_one_shot_decoding_of_the_bytes(ids):
    decoder = BPE.stream_decoder()
    streamed = "".join(decoder.push(i) for i in ids) + decoder.flush()
    pieces = b"".join(BPE.token_to_piece(i, special=False) for i in ids)
    assert streamed == pieces.decode("utf-8", errors="replace") == BPE.decode(ids)


@settings(max_examples=100, deadline=None)
@given(st.text(st.characters(blacklist_characters="\u2581", blacklist_categories=("Cs",)), max_size=40))
def test_the_stream_strips_the_space_prefix_as_decode_does(text):
    ids = SPM.encode(text, parse_special=False)
    decoder = SPM.stream_decoder()
    assert "".join(decoder.push(i) for i in ids) + decoder.flush() == SPM.decode(ids) == text
