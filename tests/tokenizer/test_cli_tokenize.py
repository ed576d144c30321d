"""`ggufsm tokenize`: ids and pieces for a registered model or a path."""

from __future__ import annotations

import json

import pytest

from ggufsm.cli import main
from ggufsm.reference.model import registry as models

TEXT = "Hello world, it's 2024! 日本 <|im_end|>"


@pytest.mark.real_model
def test_tokenize_json_prints_the_tokenizers_ids_and_pieces(capsys, real_tokenizers):
    tokenizer = real_tokenizers("smollm2")
    assert main(["tokenize", "-m", "smollm2", "--json", TEXT]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["ids"] == tokenizer.encode(TEXT)
    assert printed["count"] == len(printed["pieces"]) == len(printed["ids"])
    assert printed["pieces"][:2] == ["Hello", " world"] and printed["pieces"][-1] == "<|im_end|>"


@pytest.mark.real_model
def test_tokenize_accepts_a_path_and_prints_one_line_per_token(capsys, real_tokenizers):
    expected = real_tokenizers("smollm2").encode("Hello world")  # skips when the model is not cached
    assert main(["tokenize", "-m", str(models.resolve("smollm2")), "Hello world"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[-1] == "2 tokens"
    assert [int(line.split()[0]) for line in lines[:-1]] == expected


def test_tokenize_with_an_unknown_model_fails_with_a_named_error(capsys, tmp_path):
    assert main(["tokenize", "-m", str(tmp_path / "absent.gguf"), "hi"]) == 2
    assert "ModelUnavailable" in capsys.readouterr().err
