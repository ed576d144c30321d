"""One session's decode step walked by the pool's threads as a team (cpp/forward/pass.cpp, run_pass) gives the
very logits, to the last bit, that the step dispatched product by product gives (`kernels.set_step_shape(
layer_walk=False)`) on as many threads: each product keeps its split into row tiles, each row one kernel
call; the attention keeps its plan (the same segments, combined in the same order); the small ops run in the
same order on one thread; and so in every shape of the walk (WALK_SHAPES). The positions cross the inline
attention's edge (254-257) and the first cut into segments (512), and a window slides (Gemma 3's local layers).
An error in a step leaves the pool walking the next step to the same bits."""

from __future__ import annotations

import numpy as np
import pytest
from gguf import GGMLQuantizationType as T

from ggufsm import _core
from ggufsm._core import kernels
from ggufsm.conformance.fixtures.tiny_models import GEMMA3_Q4_K_M_TYPES, TinyGemma3Spec, TinyLlamaSpec, write_tiny_gemma3, write_tiny_llama
from ggufsm.reference.model.gguf_file import open_gguf
from ggufsm.spec.errors import ContextOverflow


@pytest.fixture(autouse=True)
def layer_walk_back_on():
    yield
    kernels.set_step_shape()


# The walk's shapes (kernels.set_step_shape): its products cut as the dispatched step cuts them, cut into parts of
# a few tiles each (a member done with its share takes the other's last parts), and member 0 reading ahead before
# each small op. The tiny models' matrices are a few KiB: 256-byte parts make every row tile a part.
WALK_SHAPES = {"dispatched cut": {}, "fine parts": {"walk_part_bytes": 256}, "small-op read-ahead": {"small_op_read_ahead": 64},
               "both": {"walk_part_bytes": 256, "small_op_read_ahead": 64}}


def decode_logits(core, threads: int, tokens: list[int], prompt: int, layer_walk: bool, n_ctx: int,
                  shape: dict | None = None) -> np.ndarray:
    """The logits of decode steps prompt .. len(tokens) - 1 of one session after a prefill of tokens[:prompt]."""
    kernels.set_step_shape(layer_walk=layer_walk, **(shape or {}))
    model = _core.LlamaModel(core, threads)
    session = _core.LlamaSession(model, n_ctx)
    session.prefill(tokens[:prompt], 0)
    steps = [np.array(session.decode(tokens[pos], pos), copy=True) for pos in range(prompt, len(tokens))]
    return np.stack(steps)


def assert_walked_equals_dispatched(core, n_vocab: int, prompt: int, steps: int, n_ctx: int, seed: int = 3,
                                    shapes: tuple[str, ...] = tuple(WALK_SHAPES)):
    """At each thread count (from 512 positions on, a token's attention is cut into as many segments as
    the thread count favours, so 1 and 2 threads may differ there, as they did before the walk), in each of
    the walk's shapes."""
    tokens = np.random.default_rng(seed).integers(3, n_vocab, size=prompt + steps).tolist()
    for threads in (1, 2):
        dispatched = decode_logits(core, threads, tokens, prompt, False, n_ctx)
        for shape in shapes:
            walked = decode_logits(core, threads, tokens, prompt, True, n_ctx, WALK_SHAPES[shape])
            assert np.array_equal(walked.view(np.uint32), dispatched.view(np.uint32)), f"{threads} threads, {shape}"


@pytest.mark.parametrize("matrix_type", [T.F32, T.Q4_1, T.Q8_0], ids=["f32", "q4_1", "q8_0"])
@pytest.mark.parametrize("prompt,steps", [(1, 8), (250, 10), (506, 10)])
def test_tiny_llama_walked_decode_steps_equal_the_dispatched_ones_to_the_bit(tmp_path, prompt, steps, matrix_type):
    path = write_tiny_llama(tmp_path / "tiny.gguf", TinyLlamaSpec(matrix_type=matrix_type))
    assert_walked_equals_dispatched(open_gguf(path).core, TinyLlamaSpec().n_vocab, prompt, steps, 544)


# Gemma 3's Q4_K_M mix: wq/wk Q5_0 beside wv Q8_0, wo Q4_K, w_down Q6_K: the products of one step in two
# activation formats, and several formats in one project (each its own claim).
@pytest.mark.parametrize("types", [{}, GEMMA3_Q4_K_M_TYPES], ids=["q8_0", "q4_k_m-mix"])
@pytest.mark.parametrize("prompt,steps", [(1, 8), (250, 10), (506, 10)])
def test_tiny_gemma3_walked_decode_steps_equal_the_dispatched_ones_to_the_bit(tmp_path, prompt, steps, types):
    path = write_tiny_gemma3(tmp_path / "tiny.gguf", TinyGemma3Spec(type_overrides=types))
    assert_walked_equals_dispatched(open_gguf(path).core, TinyGemma3Spec().n_vocab, prompt, steps, 544)


def test_after_a_refused_step_the_walked_pool_decodes_the_same_bits(tmp_path):
    path = write_tiny_llama(tmp_path / "tiny.gguf")
    core = open_gguf(path).core
    tokens = np.random.default_rng(5).integers(3, TinyLlamaSpec().n_vocab, size=12).tolist()
    expected = decode_logits(core, 2, tokens, 4, False, 16)
    kernels.set_step_shape(layer_walk=True)
    model = _core.LlamaModel(core, 2)
    session = _core.LlamaSession(model, 16)
    session.prefill(tokens[:4], 0)
    with pytest.raises(ContextOverflow):
        session.decode(tokens[4], 16)
    walked = np.stack([np.array(session.decode(tokens[pos], pos), copy=True) for pos in range(4, 12)])
    assert np.array_equal(walked.view(np.uint32), expected.view(np.uint32))


@pytest.mark.real_model
@pytest.mark.parametrize("name", ["smollm2", "gemma3"])
@pytest.mark.parametrize("prompt,steps", [(250, 10), (508, 6)])
def test_real_model_walked_decode_steps_equal_the_dispatched_ones_to_the_bit(name, prompt, steps):
    from real_models import real_model_path

    g = open_gguf(real_model_path(name))
    assert_walked_equals_dispatched(g.core, g.hyperparameters["n_vocab"], prompt, steps, prompt + steps + 16,
                                    shapes=("dispatched cut", "both"))

