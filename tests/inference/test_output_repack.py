"""The output matrix's repack after the first pass (cpp/forward/output_repack.h): a Q8_0 output (tied to the
embedding in SmolLM2, Gemma 3 and the tiny Gemma 3) is read in the file's layout in the Rows8 kernels' float
order until a thread of its own has repacked it, and then from the Rows8 copy, swapped in between two passes.
Every token and logit keeps its bits across the swap, one session or batched; the file map's pages of the
matrix leave the RSS after it; freeing a model while its output repacks waits for the thread, which leaves
nothing behind. No test waits on a clock: wait_output_repack blocks on the repack's own condition."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from bit_runs import N_CTX, PROMPT, batched_run, greedy_run, switched_off, threads_now

from ggufsm import _core
from ggufsm.conformance.fixtures.tiny_models import write_tiny_gemma3
from ggufsm.reference.model.gguf_file import open_gguf


@pytest.fixture
def output_repack_off():
    """Models built inside `with output_repack_off():` keep their output in the file's layout."""
    yield lambda: switched_off(_core.set_output_repack)
    _core.set_output_repack(True)


@pytest.fixture(scope="module")
def tiny_gemma3(tmp_path_factory) -> Path:
    return write_tiny_gemma3(tmp_path_factory.mktemp("outrepack") / "tiny.gguf")


def wait_for_swap(model):
    def wait():
        model.wait_output_repack()
        assert model.output_repack == "swapped"

    return wait


def tokens_and_logits_keep_their_bits_across_the_swap(path, output_repack_off, steps: int) -> None:
    with output_repack_off():
        in_file_layout = _core.LlamaModel(open_gguf(path).core, 2)
    assert in_file_layout.output_repack is None
    repacking = _core.LlamaModel(open_gguf(path).core, 2)
    assert repacking.output_repack == "waiting"  # nothing repacked at load: the first token does not wait for it
    expected = greedy_run(in_file_layout, steps)
    got = greedy_run(repacking, steps, after_prompt=wait_for_swap(repacking))
    for step, (e, g) in enumerate(zip(expected, got, strict=True)):
        assert np.array_equal(e, g), f"pass {step}"
    # Batched, after the swap, against the file layout's batch.
    for step, (e, g) in enumerate(zip(batched_run(in_file_layout, steps), batched_run(repacking, steps), strict=True)):
        for i in range(2):
            assert np.array_equal(e[i], g[i]), f"step {step}, session {i}"


def test_tokens_and_logits_keep_their_bits_across_the_output_repack_one_session_and_batched_on_the_tiny_gemma3(
        tiny_gemma3, output_repack_off):
    tokens_and_logits_keep_their_bits_across_the_swap(tiny_gemma3, output_repack_off, steps=4)


@pytest.mark.real_model
@pytest.mark.parametrize("name", ["smollm2", "gemma3"])
def test_tokens_and_logits_keep_their_bits_across_the_output_repack_on_the_real_models(name, request, output_repack_off):
    tokens_and_logits_keep_their_bits_across_the_swap(request.getfixturevalue(f"{name}_path"), output_repack_off, steps=3)


def test_the_repack_waits_for_the_first_pass_then_swaps_in_a_copy_of_the_matrixs_size(tiny_gemma3):
    model = _core.LlamaModel(open_gguf(tiny_gemma3).core, 2)
    assert model.output_repack == "waiting"
    assert model.output_copy["bytes"] == 0
    model.wait_output_repack(start=True)  # no pass at all: the thread swaps by itself
    assert model.output_repack == "swapped"
    with open_gguf(tiny_gemma3) as f:
        info = f.tensors["token_embd.weight"]
        page = os.sysconf("SC_PAGESIZE")
        assert model.output_copy["bytes"] == -(-int(info.nbytes) // page) * page


def test_a_model_not_repacked_at_load_or_in_the_huge_page_copy_has_no_output_repack(tiny_gemma3):
    assert _core.LlamaModel(open_gguf(tiny_gemma3).core, 1, repack=False).output_repack is None
    assert _core.LlamaModel(open_gguf(tiny_gemma3).core, 1, huge_pages=True).output_repack is None


def test_freeing_a_model_while_its_output_repacks_joins_the_thread_and_leaves_no_thread_behind(tiny_gemma3):
    core = open_gguf(tiny_gemma3).core
    _core.LlamaModel(core, 2)  # the pool of two threads exists from here on (shared_pool keeps it while in use)
    keep = _core.LlamaModel(core, 2)
    before = threads_now()
    for _ in range(5):
        model = _core.LlamaModel(core, 2)
        session = _core.LlamaSession(model, N_CTX)
        session.prefill(PROMPT, 0)  # the first pass's end starts the repack's thread
        del session
        del model  # cancels it between chunks or waits for its end; joins it either way
        assert threads_now() <= before  # no thread of these models outlives them
    del keep


def resident_fraction(a: np.ndarray) -> float:
    """The share of the whole pages under `a` this process has present (the /proc/self/pagemap present bit)."""
    page = os.sysconf("SC_PAGESIZE")
    first, last = -(-a.ctypes.data // page), (a.ctypes.data + a.nbytes) // page
    with open("/proc/self/pagemap", "rb") as pagemap:
        pagemap.seek(8 * first)
        entries = np.frombuffer(pagemap.read(8 * (last - first)), dtype=np.uint64)
    return float(np.count_nonzero(entries >> np.uint64(63))) / max(1, last - first)


@pytest.mark.real_model
def test_after_the_swap_the_file_maps_pages_of_the_output_leave_the_rss(smollm2_path, output_repack_off):
    # Every load of the file shares its one map (cpp/gguf/model.h): the output's pages there, as this array sees them.
    with open_gguf(smollm2_path) as f:
        output = f.tensor_data("token_embd.weight")
        with output_repack_off():
            kept = _core.LlamaModel(f.core, 2)
        _core.LlamaSession(kept, N_CTX).prefill(PROMPT, 0)  # reads the whole output through the map
        assert resident_fraction(output) > 0.99
        del kept
        model = _core.LlamaModel(f.core, 2)
        model.wait_output_repack(start=True)  # repacked, swapped, and the map's pages of it released
        assert resident_fraction(output) < 0.01
        session = _core.LlamaSession(model, N_CTX)
        session.prefill(PROMPT, 0)
        session.decode(int(np.argmax(session.logits)), len(PROMPT))
        assert resident_fraction(output) < 0.01  # the passes read the copy, never the map
        del output
