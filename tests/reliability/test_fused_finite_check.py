"""The finite-weights check fused into the load's own read of the weights (the repack checks each
group's scales as it writes them; the Q8_0 matrices it leaves are scanned across the pool) gives the
verdict and the named error the one-threaded scan gave: the same first tensor, the same byte offset."""

from __future__ import annotations

import shutil

import gguf
import numpy as np
import pytest

from ggufsm import Runtime
from ggufsm.conformance.fixtures.tiny_models import write_tiny_llama
from ggufsm.reference.model import finite_weights
from ggufsm.reference.model.finite_weights import BLOCK_SCALE_OFFSETS, check_finite_weights, first_non_finite
from ggufsm.reference.model.gguf_file import open_gguf
from ggufsm.spec.errors import InvalidModel

T = gguf.GGMLQuantizationType
HALF_NAN = np.frombuffer(np.float16(np.nan).tobytes(), np.uint8)
HALF_INF = np.frombuffer(np.float16(np.inf).tobytes(), np.uint8)


def oracle_message(path, monkeypatch) -> str | None:
    """The one-threaded numpy scan's error over the whole file, or None when it passes."""
    with monkeypatch.context() as patched:
        patched.setattr(finite_weights, "_first_masked", finite_weights._first_masked_numpy)
        with open_gguf(path) as model:
            try:
                check_finite_weights(model)
            except InvalidModel as error:
                return error.message
    return None


def load_message(path, n_threads: int) -> str:
    runtime = Runtime()
    runtime.init_runtime(n_ctx=64, n_threads=n_threads)
    with pytest.raises(InvalidModel) as raised:
        runtime.load_model(path)
    return raised.value.message


def plant(path, tensor: str, block: int, scale: int, bits: np.ndarray) -> None:
    """Overwrite the fp16 scale `scale` (an offset in BLOCK_SCALE_OFFSETS) of block `block` of `tensor`."""
    with open_gguf(path) as model:
        info = model.tensors[tensor]
        at = info.offset + block * gguf.GGML_QUANT_SIZES[info.type][1] + scale
    with open(path, "r+b") as file:
        file.seek(at)
        file.write(bits.tobytes())


@pytest.mark.parametrize("matrix_type", [T.Q4_0, T.Q4_1, T.Q5_0, T.Q5_1, T.Q8_0], ids=lambda t: t.name)
@pytest.mark.parametrize("n_threads", [1, 2])
def test_a_non_finite_scale_in_a_repacked_or_scanned_matrix_is_named_as_the_one_threaded_scan_names_it(
        tmp_path, monkeypatch, matrix_type, n_threads):
    path = write_tiny_llama(tmp_path / "q.gguf", matrix_type=matrix_type)
    # Every scale offset of the type, in a late group of a layer matrix; a later tensor holds one too.
    for scale in BLOCK_SCALE_OFFSETS[matrix_type]:
        plant(path, "blk.1.ffn_up.weight", 37, scale, HALF_INF)
    plant(path, "blk.1.ffn_down.weight", 0, 0, HALF_NAN)
    expected = oracle_message(path, monkeypatch)
    assert expected is not None and "'blk.1.ffn_up.weight'" in expected
    assert load_message(path, n_threads) == expected


@pytest.mark.parametrize("n_threads", [1, 2])
def test_of_several_non_finite_scales_in_one_matrix_the_first_is_named_whichever_thread_finds_it(
        tmp_path, monkeypatch, n_threads):
    path = write_tiny_llama(tmp_path / "q.gguf", matrix_type=T.Q4_1)
    for block in (100, 3, 60):   # groups 6, 0 and 3 of the matrix, planted out of order
        plant(path, "blk.0.attn_q.weight", block, 2, HALF_NAN)
    expected = oracle_message(path, monkeypatch)
    assert expected is not None and f"byte offset {_offset(path, 'blk.0.attn_q.weight', 3, 2)}" in expected
    assert load_message(path, n_threads) == expected


def _offset(path, tensor: str, block: int, scale: int) -> int:
    with open_gguf(path) as model:
        info = model.tensors[tensor]
        return info.offset + block * gguf.GGML_QUANT_SIZES[info.type][1] + scale


@pytest.mark.parametrize("tensor", ["blk.3.attn_q.weight", "blk.5.ffn_down.weight", "token_embd.weight",
                                    "blk.2.attn_v.weight"])
def test_gemma3_a_non_finite_scale_in_each_of_its_matrix_types_is_named_as_the_one_threaded_scan_names_it(
        gemma3_path, tmp_path, monkeypatch, tensor):
    path = tmp_path / "gemma3.gguf"
    shutil.copyfile(gemma3_path, path)
    with open_gguf(path) as model:
        info = model.tensors[tensor]
        blocks = info.nbytes // gguf.GGML_QUANT_SIZES[info.type][1]
        scale = BLOCK_SCALE_OFFSETS[info.type][-1]
    plant(path, tensor, blocks - 1, scale, HALF_INF)   # the very last block: the far end of the last chunk
    expected = oracle_message(path, monkeypatch)
    assert expected is not None and repr(tensor) in expected
    assert load_message(path, 2) == expected


@pytest.mark.parametrize("model", ["smollm2_path", "gemma3_path"])
def test_the_builds_verdicts_cover_every_repacked_matrix_and_agree_with_the_scan(model, request):
    """A real model's verdicts: every quantized layer matrix and the embedding, each finite, as the scan says."""
    from ggufsm.reference.architectures import registry as architectures

    with open_gguf(request.getfixturevalue(model)) as file:
        weights = architectures.load(file, n_threads=2)
        try:
            checked = weights.scales_checked
            quantized = {info.offset: info for info in file.tensors.values() if info.type in BLOCK_SCALE_OFFSETS}
            assert set(checked) == set(quantized)
            for offset, verdict in checked.items():
                info = quantized[offset]
                assert verdict is None
                assert first_non_finite(file.tensor_data(info.name), info.type) is None
        finally:
            weights.close()


@pytest.mark.parametrize("n_threads", [1, 2, 3])
def test_with_every_matrix_repacked_in_one_dispatch_each_matrix_gets_its_own_first_non_finite_scale(
        tmp_path, n_threads):
    # The repack runs over the groups of all the layer matrices at once, so one chunk spans the end of a
    # matrix and the start of the next: a bad scale at either side of that seam belongs to its own matrix.
    from ggufsm import _core

    path = write_tiny_llama(tmp_path / "q.gguf", matrix_type=T.Q4_1)
    with open_gguf(path) as model:
        last_block = {name: info.nbytes // gguf.GGML_QUANT_SIZES[info.type][1] - 1
                      for name, info in model.tensors.items() if info.type == T.Q4_1}
    plant(path, "blk.0.attn_q.weight", last_block["blk.0.attn_q.weight"], 0, HALF_NAN)  # its last group
    plant(path, "blk.0.attn_k.weight", 0, 2, HALF_INF)                                    # the next one's first
    plant(path, "blk.1.ffn_down.weight", 5, 0, HALF_NAN)
    plant(path, "blk.1.ffn_down.weight", 2, 2, HALF_NAN)                                  # the earlier of two
    with open_gguf(path) as model:
        checked = _core.LlamaModel(model.core, n_threads).scales_checked
        by_offset = {info.offset: info for info in model.tensors.values()}
        verdicts = {by_offset[offset].name: verdict for offset, verdict in checked.items()}
        expected = {name: first_non_finite(model.tensor_data(name), T.Q4_1) for name in verdicts}
    assert verdicts == expected
    assert {name for name, verdict in verdicts.items() if verdict is not None} == {
        "blk.0.attn_q.weight", "blk.0.attn_k.weight", "blk.1.ffn_down.weight"}
