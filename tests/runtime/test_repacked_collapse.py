"""The repacked layer matrices are written on 4 KiB pages at load and moved onto 2 MiB pages after the first
pass, on a thread of their own (cpp/runtime/huge_page_collapse.h): a fresh 2 MiB page's first touch is the
one a host with free page reporting makes slowest, and the load would wait for it. The collapse copies
pages, so every token and logit keeps its bits across it, one session or batched; freeing a model joins its
thread. No test waits on a clock: wait_repacked_collapse blocks on the collapse's own condition."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from bit_runs import N_CTX, PROMPT, batched_run, greedy_run, switched_off, threads_now
from gguf import GGMLQuantizationType

from ggufsm import _core
from ggufsm.conformance.fixtures.tiny_models import write_tiny_gemma3, write_tiny_llama
from ggufsm.reference.model.gguf_file import open_gguf


@pytest.fixture
def collapse_off():
    """Models built inside `with collapse_off():` fault their repacked matrices in as 2 MiB pages at load."""
    yield lambda: switched_off(_core.set_layer_page_collapse)
    _core.set_layer_page_collapse(True)


@pytest.fixture(scope="module")
def tiny_q4(tmp_path_factory) -> Path:
    return write_tiny_llama(tmp_path_factory.mktemp("collapse") / "q4_0.gguf", seed=0,
                            matrix_type=GGMLQuantizationType.Q4_0)


def bits(a):
    return np.asarray(a).view(np.uint32).copy()


def test_the_collapse_waits_for_the_first_pass_and_ends_done(tiny_q4):
    model = _core.LlamaModel(open_gguf(tiny_q4).core, 2)
    assert model.weights_repacked > 0
    assert model.repacked_collapse == "waiting"  # nothing at load: the first token does not wait for it
    _core.LlamaSession(model, N_CTX).prefill(PROMPT, 0)  # the first pass's end starts it
    model.wait_repacked_collapse()
    assert model.repacked_collapse == "done"


def test_without_the_collapse_or_a_repacked_mapping_there_is_none(tiny_q4, collapse_off):
    with collapse_off():
        assert _core.LlamaModel(open_gguf(tiny_q4).core, 1).repacked_collapse is None
    assert _core.LlamaModel(open_gguf(tiny_q4).core, 1, repack=False).repacked_collapse is None
    assert _core.LlamaModel(open_gguf(tiny_q4).core, 1, huge_pages=True).repacked_collapse is None


def test_freeing_a_model_while_it_collapses_joins_the_thread_and_leaves_no_thread_behind(tiny_q4):
    core = open_gguf(tiny_q4).core
    keep = _core.LlamaModel(core, 2)  # the pool of two threads exists from here on
    before = threads_now()
    for _ in range(5):
        model = _core.LlamaModel(core, 2)
        _core.LlamaSession(model, N_CTX).prefill(PROMPT, 0)  # starts the collapse's thread
        del model  # cancels it between 2 MiB pieces or waits for its end; joins it either way
        assert threads_now() <= before
    del keep


def wait_for_collapse(model):
    def wait():
        model.wait_repacked_collapse()
        assert model.repacked_collapse == "done"

    return wait


def thp_possible() -> bool:
    try:
        return "[never]" not in Path("/sys/kernel/mm/transparent_hugepage/enabled").read_text()
    except OSError:
        return False


@pytest.mark.real_model
@pytest.mark.parametrize("name", ["smollm2", "gemma3"])
def test_tokens_and_logits_keep_their_bits_across_the_collapse_one_session_and_batched(name, request, collapse_off):
    path = request.getfixturevalue(f"{name}_path")
    with collapse_off():
        faulted_huge = _core.LlamaModel(open_gguf(path).core, 2)
    collapsing = _core.LlamaModel(open_gguf(path).core, 2)
    assert collapsing.repacked_huge_page_bytes == 0  # written on 4 KiB pages
    expected = greedy_run(faulted_huge, 3)
    got = greedy_run(collapsing, 3, after_prompt=wait_for_collapse(collapsing))
    if thp_possible():
        assert collapsing.repacked_huge_page_bytes > 0
    for step, (e, g) in enumerate(zip(expected, got, strict=True)):
        assert np.array_equal(e, g), f"pass {step}"
    for step, (e, g) in enumerate(zip(batched_run(faulted_huge, 3), batched_run(collapsing, 3), strict=True)):
        for i in range(2):
            assert np.array_equal(e[i], g[i]), f"step {step}, session {i}"



@pytest.mark.parametrize("write", [
    lambda path: write_tiny_llama(path, seed=0, matrix_type=GGMLQuantizationType.Q4_0),  # repacked layers, no Q8_0 output
    write_tiny_gemma3,  # a Q8_0 output to repack, no repacked layers
], ids=["collapse", "output-repack"])
def test_finish_load_ends_the_work_a_load_leaves_for_after_the_first_pass_with_no_pass(write, tmp_path):
    """What the benches time as load: the output's repack and the layers' collapse, started now and waited for."""
    model = _core.LlamaModel(open_gguf(write(tmp_path / "tiny.gguf")).core, 2)
    pending = {"repacked_collapse": model.repacked_collapse, "output_repack": model.output_repack}
    assert "waiting" in pending.values()
    model.finish_load()
    assert model.repacked_collapse in (None, "done") and model.output_repack in (None, "swapped")
    assert model.repacked_collapse != pending["repacked_collapse"] or model.output_repack != pending["output_repack"]
