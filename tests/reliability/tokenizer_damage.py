"""Tiny models whose container and declaration are valid but whose vocabulary is not (the checks only the
tokenizer makes): `inspect` used to accept these while `load_model` refused them."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from unittest import mock

from ggufsm.conformance.fixtures import tiny_models
from ggufsm.conformance.fixtures.vocabulary import bpe_vocabulary

Vocabulary = tuple[list[str], list[int], list[str]]


def _duplicate_token(tokens: list[str], types: list[int], merges: list[str]) -> Vocabulary:
    return [*tokens[:-1], tokens[300]], types, merges


def _merge_without_a_space(tokens: list[str], types: list[int], merges: list[str]) -> Vocabulary:
    return tokens, types, [merges[0].replace(" ", ""), *merges[1:]]


TOKENIZER_DAMAGE: dict[str, Callable[[list[str], list[int], list[str]], Vocabulary]] = {
    "duplicate_token": _duplicate_token,
    "merge_without_a_space": _merge_without_a_space,
}


def write_damaged_tokenizer(path: str | Path, damage: str) -> Path:
    def damaged(n_vocab: int) -> Vocabulary:
        return TOKENIZER_DAMAGE[damage](*bpe_vocabulary(n_vocab))

    with mock.patch.object(tiny_models, "bpe_vocabulary", damaged):
        return tiny_models.write_tiny_llama(path, seed=0)
