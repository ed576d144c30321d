"""A batched decode step (one token of each of several sessions, `_core.DecodeBatch`) walked by the pool's threads
as a team (cpp/forward/pass.cpp, run_pass) gives every session the very logits, to the last bit, that the step
dispatched product by product gives (`kernels.set_step_shape(batch_walk=False)`): each product keeps its split into
row tiles, the attention keeps the plan attention_decode_batch makes for the same queries, the small ops run in the
same order on one thread; and so in every shape of the walk. The sessions sit at different positions, some across
the inline attention's edge (254-257) and the first cut into segments (512), and a window slides (Gemma 3's local
layers). A refused batch leaves the walked pool stepping to the same bits."""

from __future__ import annotations

import numpy as np
import pytest
from gguf import GGMLQuantizationType as T

from ggufsm import _core
from ggufsm._core import kernels
from ggufsm.conformance.fixtures.tiny_models import GEMMA3_Q4_K_M_TYPES, TinyGemma3Spec, TinyLlamaSpec, write_tiny_gemma3, write_tiny_llama
from ggufsm.reference.model.gguf_file import open_gguf
from ggufsm.spec.errors import ContextOverflow

SHAPES = {"dispatched cut": {}, "fine parts": {"walk_part_bytes": 256}, "small-op read-ahead": {"small_op_read_ahead": 64}}


@pytest.fixture(autouse=True)
def step_shape_back_to_default():
    yield
    kernels.set_step_shape()


def batched_logits(core, threads: int, tokens: list[int], prompts: list[int], steps: int, walked: bool,
                   shape: dict | None = None, n_ctx: int = 544) -> np.ndarray:
    """[steps][sessions][n_vocab]: session i prefills tokens[:prompts[i]], then every step decodes each session's
    next token of `tokens` at its own position, all sessions in one batched pass."""
    kernels.set_step_shape(batch_walk=walked, **(shape or {}))
    model = _core.LlamaModel(core, threads)
    sessions = [_core.LlamaSession(model, n_ctx) for _ in prompts]
    for session, prompt in zip(sessions, prompts, strict=True):
        session.prefill(tokens[:prompt], 0)
    batch = _core.DecodeBatch(model)
    out = []
    for step in range(steps):
        positions = [prompt + step for prompt in prompts]
        batch.decode(sessions, [tokens[pos] for pos in positions], positions)
        out.append(np.stack([np.array(session.logits, copy=True) for session in sessions]))
    return np.stack(out)


def assert_walked_equals_dispatched(core, n_vocab: int, prompts: list[int], steps: int, shapes=tuple(SHAPES)):
    tokens = np.random.default_rng(7).integers(3, n_vocab, size=max(prompts) + steps).tolist()
    dispatched = batched_logits(core, 2, tokens, prompts, steps, walked=False)
    for shape in shapes:
        walked = batched_logits(core, 2, tokens, prompts, steps, walked=True, shape=SHAPES[shape])
        assert np.array_equal(walked.view(np.uint32), dispatched.view(np.uint32)), shape


# Four sessions: two short, one crossing the inline attention's edge, one crossing the first cut into segments.
PROMPTS = [1, 9, 251, 506]


@pytest.mark.parametrize("matrix_type", [T.F32, T.Q4_1, T.Q8_0], ids=["f32", "q4_1", "q8_0"])
def test_tiny_llama_walked_batched_steps_equal_the_dispatched_ones_to_the_bit(tmp_path, matrix_type):
    path = write_tiny_llama(tmp_path / "tiny.gguf", TinyLlamaSpec(matrix_type=matrix_type))
    assert_walked_equals_dispatched(open_gguf(path).core, TinyLlamaSpec().n_vocab, PROMPTS, 8)


@pytest.mark.parametrize("types", [{}, GEMMA3_Q4_K_M_TYPES], ids=["q8_0", "q4_k_m-mix"])
def test_tiny_gemma3_walked_batched_steps_equal_the_dispatched_ones_to_the_bit(tmp_path, types):
    path = write_tiny_gemma3(tmp_path / "tiny.gguf", TinyGemma3Spec(type_overrides=types))
    assert_walked_equals_dispatched(open_gguf(path).core, TinyGemma3Spec().n_vocab, PROMPTS, 8)


def test_two_and_nine_sessions_walked_equal_the_dispatched_ones_to_the_bit(tmp_path):
    path = write_tiny_llama(tmp_path / "tiny.gguf", TinyLlamaSpec(matrix_type=T.Q4_1))
    core = open_gguf(path).core
    assert_walked_equals_dispatched(core, TinyLlamaSpec().n_vocab, [3, 5], 4, shapes=("dispatched cut",))
    assert_walked_equals_dispatched(core, TinyLlamaSpec().n_vocab, [1, 2, 3, 4, 5, 6, 7, 8, 300], 4, shapes=("dispatched cut",))


@pytest.mark.parametrize("walked", [True, False], ids=["walked", "dispatched"])
def test_a_batched_step_is_walked_by_the_team_only_when_batch_walk_is_on(tmp_path, walked):
    """The bit tests above compare two different paths: the profile's members' walk time says which ran."""
    path = write_tiny_llama(tmp_path / "tiny.gguf")
    kernels.set_step_shape(batch_walk=walked)
    model = _core.LlamaModel(open_gguf(path).core, 2)
    sessions = [_core.LlamaSession(model, 16) for _ in range(3)]
    for session in sessions:
        session.prefill([1, 2, 3], 0)
    batch = _core.DecodeBatch(model)
    batch.set_profiling(True)
    batch.decode(sessions, [4, 5, 6], [3, 3, 3])
    member0, others = batch.profile["walked_seconds"]
    assert (member0 > 0 and others > 0) if walked else (member0 == 0 and others == 0)
    assert batch.profile["passes"] == 1 and batch.profile["rows"] == 3


def test_after_a_refused_batch_the_walked_pool_steps_to_the_same_bits(tmp_path):
    path = write_tiny_llama(tmp_path / "tiny.gguf")
    core = open_gguf(path).core
    tokens = np.random.default_rng(5).integers(3, TinyLlamaSpec().n_vocab, size=16).tolist()
    prompts = [4, 6]
    expected = batched_logits(core, 2, tokens, prompts, 6, walked=False, n_ctx=16)
    kernels.set_step_shape(batch_walk=True)
    model = _core.LlamaModel(core, 2)
    sessions = [_core.LlamaSession(model, 16) for _ in prompts]
    for session, prompt in zip(sessions, prompts, strict=True):
        session.prefill(tokens[:prompt], 0)
    batch = _core.DecodeBatch(model)
    with pytest.raises(ContextOverflow):
        batch.decode(sessions, [tokens[4], tokens[6]], [4, 16])
    steps = []
    for step in range(6):
        positions = [prompt + step for prompt in prompts]
        batch.decode(sessions, [tokens[pos] for pos in positions], positions)
        steps.append(np.stack([np.array(session.logits, copy=True) for session in sessions]))
    assert np.array_equal(np.stack(steps).view(np.uint32), expected.view(np.uint32))


@pytest.mark.real_model
@pytest.mark.parametrize("name", ["smollm2", "gemma3"])
def test_real_model_walked_batched_steps_equal_the_dispatched_ones_to_the_bit(name):
    from real_models import real_model_path

    g = open_gguf(real_model_path(name))
    assert_walked_equals_dispatched(g.core, g.hyperparameters["n_vocab"], [3, 40, 252, 508], 5, shapes=("dispatched cut",))
