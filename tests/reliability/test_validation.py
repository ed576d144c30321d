"""One validation for `load_model` and `ggufsm inspect`, linear in the tensor count, and quiet about files.

`validate_model_file` (reference/model/loaded_model.py) is what both run: the
C++ core's container and declaration checks, the tokenizer's and the
forward's. Load errors name keys and offsets of a GGUF-shaped file, never its
vocabulary text, and say nothing about the bytes or size of a file that is not
GGUF (a load must not become a way to read /etc/shadow).
"""

from __future__ import annotations

import time

import pytest
from tokenizer_damage import TOKENIZER_DAMAGE, write_damaged_tokenizer

from ggufsm.conformance.fixtures import corrupt
from ggufsm.conformance.fixtures.tiny_models import write_tiny_llama
from ggufsm.reference.model.loaded_model import validate_model_file
from ggufsm.reference.runtime import Runtime
from ggufsm.spec.errors import GgufsmError, InvalidModel


def outcome_of_load(path) -> str:
    runtime = Runtime()
    runtime.init_runtime(n_ctx=64, n_threads=1)
    try:
        runtime.load_model(path)
    except GgufsmError as error:
        return error.code
    finally:
        runtime.free()
    return "ok"


def outcome_of_inspect(path) -> str:
    try:
        validate_model_file(path).close()
    except GgufsmError as error:
        return error.code
    return "ok"


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    return write_tiny_llama(tmp_path_factory.mktemp("valid") / "tiny.gguf", seed=0)


@pytest.mark.parametrize("kind", corrupt.KINDS)
def test_inspect_and_load_agree_on_every_corrupt_fixture(source, tmp_path, kind):
    path = corrupt.write_corrupt(tmp_path / f"{kind}.gguf", kind, source=source)
    assert outcome_of_inspect(path) == outcome_of_load(path) == corrupt.expected_code(kind)


@pytest.mark.parametrize("damage", sorted(TOKENIZER_DAMAGE))
def test_inspect_and_load_agree_on_a_damaged_tokenizer(tmp_path, damage):
    path = write_damaged_tokenizer(tmp_path / f"{damage}.gguf", damage)
    inspected = outcome_of_inspect(path)
    assert inspected != "ok" and inspected == outcome_of_load(path)


def test_a_file_failing_both_the_tokenizer_and_the_forward_is_named_by_its_tokenizer_on_load_and_inspect(tmp_path):
    # The tokenizer is checked before the forward, on load as on inspect: its problem is the one named.
    from unittest import mock

    import numpy as np
    import tokenizer_damage

    from ggufsm.conformance.fixtures import tiny_models
    from ggufsm.conformance.fixtures.vocabulary import bpe_vocabulary
    from ggufsm.reference.architectures import shared_forward

    spec = tiny_models.TinyLlamaSpec(seed=0)
    tensors = tiny_models.tiny_llama_tensors(spec)
    tensors["blk.0.attn_norm.weight"] = tensors["blk.0.attn_norm.weight"].astype(np.float16)  # the forward refuses F16 norms
    forward_only = tiny_models.write_tiny_llama(tmp_path / "f16-norm.gguf", spec, tensors=tensors)

    def damaged(n_vocab: int):
        return tokenizer_damage.TOKENIZER_DAMAGE["duplicate_token"](*bpe_vocabulary(n_vocab))

    with mock.patch.object(tiny_models, "bpe_vocabulary", damaged):
        both = tiny_models.write_tiny_llama(tmp_path / "both.gguf", spec, tensors=tensors)
    assert outcome_of_inspect(forward_only) == outcome_of_load(forward_only) == "UnsupportedModel"
    held = shared_forward.held()
    assert outcome_of_inspect(both) == outcome_of_load(both) == "InvalidModel"
    assert shared_forward.held() == held  # nothing of the failed load stays leased


def test_a_load_whose_tokenizer_fails_leaves_no_forward_leased(tmp_path):
    from ggufsm.reference.architectures import shared_forward

    path = write_damaged_tokenizer(tmp_path / "duplicate.gguf", "duplicate_token")  # a forward that builds
    held = shared_forward.held()
    assert outcome_of_load(path) == "InvalidModel"
    assert shared_forward.held() == held


def test_a_swapped_embedding_is_refused_with_the_shape_the_vocabulary_gives(source, tmp_path):
    import numpy as np

    from ggufsm.conformance.fixtures.tiny_models import TinyLlamaSpec, tiny_llama_tensors

    spec = TinyLlamaSpec(seed=0)
    tensors = tiny_llama_tensors(spec)
    tensors["token_embd.weight"] = np.ascontiguousarray(tensors["token_embd.weight"].T)  # [n_embd, n_vocab] swapped
    path = write_tiny_llama(tmp_path / "swapped.gguf", spec, tensors=tensors)
    with pytest.raises(InvalidModel) as raised:
        validate_model_file(path)
    # Expected [n_embd, n_vocab] in ggml order, n_vocab from the vocabulary: not the bad tensor's own rows.
    assert f"= [{spec.n_embd}, {spec.n_vocab}]" in raised.value.message


def test_a_file_that_is_not_gguf_is_refused_without_echoing_its_bytes_or_size(tmp_path):
    secret = tmp_path / "shadow"
    secret.write_bytes(b"root:$6$salt$hash:19000:0:99999:7:::\n")
    tiny = tmp_path / "tiny"
    tiny.write_bytes(b"ro")
    for path in (secret, tiny):
        with pytest.raises(InvalidModel) as raised:
            validate_model_file(path)
        message = raised.value.message
        assert "not a GGUF file" in message
        for leak in ("root", "72 6f", "726f", str(path.stat().st_size) + " bytes"):
            assert leak not in message, message


def _layered_model(path, n_layer: int):
    # The smallest per-layer tensors the declaration allows: the file's size is its tensor count.
    return write_tiny_llama(path, seed=0, n_layer=n_layer, n_embd=8, n_head=1, n_head_kv=1, n_ff=8, tokenizer=False,
                            n_vocab=8)


def _validation_seconds(path) -> float:
    from ggufsm import _core

    data = path.read_bytes()
    best = float("inf")
    # This thread's CPU time, not the wall clock: on a shared machine the wall clock counts the time the
    # thread waited for a core (one run at load 10 gave 39.8x for 8x the layers); its own work does not.
    for _ in range(3):
        started = time.thread_time()
        try:
            _core.open_gguf_buffer(data)
        except GgufsmError:
            pass  # no vocabulary: refused at the tokenizer check, after every tensor was looked up
        best = min(best, time.thread_time() - started)
    return best


def test_validation_time_grows_linearly_with_the_layer_count(tmp_path):
    """16,000 layers (144,000 tensors) once took 57 s (a linear tensor lookup per layer and role):
    with hash indexes, 8 times the layers cost about 8 times the time, not 64."""
    small = _layered_model(tmp_path / "small.gguf", 2000)
    large = _layered_model(tmp_path / "large.gguf", 16000)
    ratio = _validation_seconds(large) / _validation_seconds(small)
    assert ratio < 24, f"8x the layers took {ratio:.1f}x the time: validation is not linear"


def test_lengths_rewritten_in_the_file_after_the_load_change_nothing_the_api_serves(source, tmp_path):
    """Metadata is served from the validated header copy: a string length, an array count and a tensor
    name rewritten in place after the load are never read (they once made metadata() read 16 MiB past
    the mapping, or SIGSEGV)."""
    import shutil

    from ggufsm.reference.model.gguf_file import open_gguf

    path = tmp_path / "rewritten.gguf"
    shutil.copyfile(source, path)
    layout = corrupt.read_layout(path)
    with open_gguf(path) as model:
        before = dict(model.core.metadata())
        with open(path, "r+b") as file:
            for offset, value in ((layout.kv("general.architecture").value, (1 << 64) - 16),
                                  (layout.kv("tokenizer.ggml.tokens").value + 4, 1 << 61),
                                  (layout.kv("general.name").value, 1 << 24)):
                file.seek(offset)
                file.write(value.to_bytes(8, "little"))
        assert dict(model.core.metadata()) == before
        assert dict(model.metadata) == before
        assert [info[0] for info in model.core.tensor_infos()] == list(model.tensors)
