"""The real models' tokenizers: llama.cpp's ids (recorded), round trips, end-of-generation ids."""

from __future__ import annotations

import json

import pytest
from corpus import CORPUS
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from real_models import REAL_MODELS
from record_golden import GOLDEN_PATH, VARIANTS

from ggufsm.reference.tokenizers.spm import SPACE, SpmTokenizer

GOLDEN = json.loads(GOLDEN_PATH.read_text(encoding="utf-8"))


def test_the_golden_file_says_how_it_was_made_and_covers_the_corpus():
    assert "record_golden.py" in GOLDEN["produced_by"] and GOLDEN["llama_cpp_python_version"]
    for name in REAL_MODELS:
        assert [case["text"] for case in GOLDEN["models"][name]["cases"]] == CORPUS, \
            "corpus.py changed: re-run tests/tokenizer/record_golden.py"


@pytest.mark.real_model
@pytest.mark.parametrize("name", REAL_MODELS)
def test_ids_equal_llama_cpps_recorded_ids(name, real_tokenizers):
    tokenizer = real_tokenizers(name)
    mismatches = []
    for case in GOLDEN["models"][name]["cases"]:
        for variant, flags in VARIANTS.items():
            ours = tokenizer.encode(case["text"], add_special=flags["add_bos"], parse_special=flags["special"])
            if ours != case[variant]:
                mismatches.append((case["text"][:40], variant, ours[:12], case[variant][:12]))
    total = len(GOLDEN["models"][name]["cases"]) * len(VARIANTS)
    assert not mismatches, f"{len(mismatches)}/{total} differ from llama.cpp: {mismatches[:5]}"


@pytest.mark.real_model
@pytest.mark.parametrize("name", REAL_MODELS)
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=st.text())
def test_decoding_the_encoding_gives_back_any_text_the_vocabulary_can_spell(name, text, real_tokenizers):
    tokenizer = real_tokenizers(name)
    # SmolLM2's vocabulary lacks 21 byte spellings (e.g. 0x04, 0xF1: code points from U+40000).
    assume(not tokenizer.missing_bytes.intersection(text.encode("utf-8")))
    # SentencePiece writes spaces as U+2581, so a literal U+2581 comes back as a space.
    assume(not (isinstance(tokenizer, SpmTokenizer) and SPACE in text))
    assert tokenizer.decode(tokenizer.encode(text, parse_special=False)) == text


@pytest.mark.real_model
@pytest.mark.parametrize("name", REAL_MODELS)
def test_streaming_each_corpus_text_never_shows_a_broken_character(name, real_tokenizers):
    tokenizer = real_tokenizers(name)
    for text in CORPUS:
        decoder, shown = tokenizer.stream_decoder(), ""
        for token_id in tokenizer.encode(text, parse_special=False):
            shown += decoder.push(token_id)
            assert "\ufffd" not in shown and text.startswith(shown)
        assert shown + decoder.flush() == text


@pytest.mark.real_model
@pytest.mark.parametrize("name, end_of_turn", [("smollm2", "<|im_end|>"), ("gemma3", "<end_of_turn>")])
def test_end_of_generation_includes_eos_and_the_end_of_turn_token(name, end_of_turn, real_tokenizers):
    tokenizer = real_tokenizers(name)
    assert {tokenizer.eos_id, tokenizer.token_to_id[end_of_turn]} <= tokenizer.eot_ids
    assert all(tokenizer.is_control(i) for i in tokenizer.eot_ids)


@pytest.mark.real_model
def test_gemma3_vocabulary_is_the_documented_size(real_tokenizers):
    assert real_tokenizers("gemma3").vocab_size == 262_144
