"""`ggufsm inspect MODEL [--json]`: what the model is; a refused file exits non-zero with its named error."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from gguf import GGMLQuantizationType

from ggufsm.cli import main
from ggufsm.conformance.fixtures.corrupt import write_corrupt
from ggufsm.conformance.fixtures.tiny_models import write_tiny_llama


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return write_tiny_llama(tmp_path_factory.mktemp("inspect") / "tiny.gguf", n_ctx=256,
                            matrix_type=GGMLQuantizationType.Q8_0)


def inspect_json(capsys, model: str) -> dict:
    assert main(["inspect", model, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_inspect_json_reports_architecture_hyperparameters_tokenizer_tensors_and_size(capsys, tiny):
    summary = inspect_json(capsys, str(tiny))
    assert (summary["architecture"], summary["file_size"], summary["gguf_version"]) == ("llama", tiny.stat().st_size, 3)
    assert summary["hyperparameters"]["n_ctx_train"] == 256
    assert summary["hyperparameters"]["n_layer"] == 2
    assert (summary["tokenizer"]["kind"], summary["tokenizer"]["size"]) == ("byte-level BPE", 320)
    assert summary["tokenizer"]["chat_template"] is True
    # 2 layers x 7 matrices + the embedding are Q8_0; 2 x 2 norms + output_norm are F32.
    assert {name: entry["count"] for name, entry in summary["tensors"]["by_type"].items()} == {"Q8_0": 15, "F32": 5}
    assert summary["tensors"]["count"] == 20


def test_inspect_prints_a_readable_summary(capsys, tiny):
    assert main(["inspect", str(tiny)]) == 0
    text = capsys.readouterr().out
    assert "architecture   llama" in text
    assert "byte-level BPE (gpt2, pre smollm), 320 tokens" in text
    assert "Q8_0" in text and "F32" in text


@pytest.mark.real_model
@pytest.mark.parametrize("name, architecture, kind, size", [
    ("smollm2", "llama", "byte-level BPE", 49152), ("gemma3", "gemma3", "SentencePiece", 262144)])
def test_inspect_takes_a_registry_name(capsys, request, name, architecture, kind, size):
    path = request.getfixturevalue(f"{name}_path")
    summary = inspect_json(capsys, name)
    assert summary["path"] == str(path)
    assert (summary["architecture"], summary["tokenizer"]["kind"], summary["tokenizer"]["size"]) == (architecture, kind, size)


def test_a_refused_file_prints_its_named_error_and_exits_non_zero_without_a_traceback(tiny, tmp_path):
    bad = write_corrupt(tmp_path / "bad.gguf", "zero_dim", source=tiny)
    result = subprocess.run([sys.executable, "-m", "ggufsm", "inspect", str(bad)], capture_output=True, text=True)
    assert result.returncode != 0
    assert result.stderr.startswith("ggufsm: InvalidModel: tensor ")
    assert "Traceback" not in result.stderr and result.stdout == ""


def test_a_missing_model_is_model_unavailable(capsys, tmp_path):
    assert main(["inspect", str(tmp_path / "absent.gguf")]) == 2
    assert "ModelUnavailable" in capsys.readouterr().err
