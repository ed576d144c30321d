"""Pre-tokenizers cut text into words as llama.cpp's expressions for each `tokenizer.ggml.pre` do."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ggufsm.reference.tokenizers.pretokenizers import PRETOKENIZERS, pretokenizer_for
from ggufsm.spec.errors import UnsupportedModel


def test_smollm_isolates_every_digit():
    assert pretokenizer_for("smollm").split("abc 12345") == ["abc", " ", "1", "2", "3", "4", "5"]


def test_gpt2_keeps_a_space_with_the_next_word_and_splits_contractions():
    assert pretokenizer_for("gpt-2").split("I'm here  now") == ["I", "'m", " here", " ", " now"]


def test_gpt2_contractions_are_case_sensitive_and_llama3_ones_are_not():
    assert pretokenizer_for("gpt-2").split("I'M") == ["I", "'", "M"]
    assert pretokenizer_for("llama3").split("I'M") == ["I", "'M"]


def test_llama3_groups_digits_in_threes():
    assert pretokenizer_for("llama3").split("1234567") == ["123", "456", "7"]


def test_text_no_expression_matches_stays_a_piece_of_its_own():
    # After smollm's digit split, a lone space before a digit is a piece by itself.
    assert pretokenizer_for("smollm").split(" 7") == [" ", "7"]


@pytest.mark.parametrize("name", sorted(PRETOKENIZERS))
@given(text=st.text())
def test_the_words_concatenate_back_to_the_text(name, text):
    words = pretokenizer_for(name).split(text)
    assert "".join(words) == text
    assert all(words)


def test_a_missing_name_means_default():
    assert pretokenizer_for(None) is PRETOKENIZERS["default"]


def test_an_unknown_name_is_unsupported_and_named():
    with pytest.raises(UnsupportedModel, match="'nonesuch'"):
        pretokenizer_for("nonesuch")
