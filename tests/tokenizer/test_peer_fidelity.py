"""Live comparison with llama.cpp (the peer, llama-cpp-python): ids, pieces, end-of-generation set."""

from __future__ import annotations

import ctypes

import pytest
from corpus import CORPUS
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from real_models import REAL_MODELS

from ggufsm.reference.model import registry as models

llama_cpp = pytest.importorskip("llama_cpp")
pytestmark = [pytest.mark.peer, pytest.mark.real_model]

_peers: dict = {}


def peer(name: str):
    if name not in _peers:
        status = models.cache_status(models.REGISTRY[name])
        if status.state != "verified":
            pytest.skip(f"real model {name!r} not in the cache")
        _peers[name] = llama_cpp.Llama(str(status.path), vocab_only=True, verbose=False)
    return _peers[name]


FLAGS = [(add, special) for add in (True, False) for special in (True, False)]


@pytest.mark.parametrize("name", REAL_MODELS)
def test_every_corpus_text_gets_llama_cpps_ids(name, real_tokenizers):
    tokenizer, vocab = real_tokenizers(name), peer(name)
    mismatches = [(text[:40], add, special)
                  for text in CORPUS for add, special in FLAGS
                  if tokenizer.encode(text, add_special=add, parse_special=special)
                  != vocab.tokenize(text.encode("utf-8"), add_bos=add, special=special)]
    assert not mismatches, f"{len(mismatches)}/{len(CORPUS) * len(FLAGS)} differ: {mismatches[:5]}"


# Pieces that exercise the pre-tokenizers and the special-token cut: joined at random.
MIXED = st.lists(st.sampled_from(
    list("abcXYZ019 '\n\t\r.,!?<>|_-") + ["é", "e\u0301", "日", "😀", "\u00a0", "\u3000", "٣", "½", "İ", "\u200b",
                                          "<|im_end|>", "<end_of_turn>", "<unused5>", "  ", "'s", "'LL"]),
    max_size=30).map("".join)


@pytest.mark.parametrize("name", REAL_MODELS)
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=st.one_of(MIXED, st.text(max_size=40)))
def test_random_text_gets_llama_cpps_ids(name, text, real_tokenizers):
    assert real_tokenizers(name).encode(text) == peer(name).tokenize(text.encode("utf-8"), add_bos=True, special=True)


@pytest.mark.parametrize("name", REAL_MODELS)
def test_every_token_piece_equals_llama_cpps(name, real_tokenizers):
    tokenizer, vocab = real_tokenizers(name), peer(name)._model.vocab
    buffer = ctypes.create_string_buffer(512)
    for special in (True, False):
        differing = []
        for token_id in range(tokenizer.vocab_size):
            n = llama_cpp.llama_token_to_piece(vocab, token_id, buffer, len(buffer), 0, special)
            if tokenizer.token_to_piece(token_id, special=special) != buffer.raw[:n]:
                differing.append(token_id)
        assert not differing, f"special={special}: {len(differing)} pieces differ, e.g. ids {differing[:5]}"


@pytest.mark.parametrize("name", REAL_MODELS)
def test_end_of_generation_ids_equal_llama_cpps(name, real_tokenizers):
    tokenizer, vocab = real_tokenizers(name), peer(name)._model.vocab
    theirs = {i for i in range(tokenizer.vocab_size) if llama_cpp.llama_vocab_is_eog(vocab, i)}
    assert tokenizer.eot_ids == theirs
