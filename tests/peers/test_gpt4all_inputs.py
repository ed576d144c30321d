"""The inputs GPT4All's readable run uses (`python -m ggufsm.conformance.adapters.gpt4all DIR`): the kit's
fixtures with the one pre-tokenizer name its older llama.cpp lacks rewritten, every model the suite
loads among them. Needs no gpt4all: it checks the files."""

from __future__ import annotations

import json
from pathlib import Path

import gguf

from ggufsm.conformance.adapters.gpt4all import KNOWN_PRE_TOKENIZER, LOADED_MODELS, write_inputs


def pre_tokenizer(path: Path) -> str:
    field = gguf.GGUFReader(path).fields["tokenizer.ggml.pre"]
    return bytes(field.parts[field.data[0]]).decode()


def test_every_model_the_suite_loads_is_rewritten_to_a_pre_tokenizer_gpt4all_knows(tmp_path):
    described = json.loads(write_inputs(tmp_path).read_text())
    # The overflow model was once left out: its cases failed at the load ("Model not loaded").
    assert "overflow_model" in LOADED_MODELS
    for name in LOADED_MODELS:
        path = Path(described[name])
        path = path if path.is_absolute() else tmp_path / path
        assert pre_tokenizer(path) == KNOWN_PRE_TOKENIZER.decode(), name
