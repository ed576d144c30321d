"""A pass's RoPE rotations are computed once, at its rows' positions, for each base its layers rotate with
(Gemma 3's sliding layers have their own), and shared by every layer's q and k (cpp/forward/pass.cpp,
rope_table; kernels/ops.h RopeTable): the logits are the very ones that computing them again for each layer's
q and k gives (`kernels.set_step_shape(rope_once=False)`), for a prefill whose rows the pool splits and for
decode steps, walked or dispatched, on 1 and 2 threads."""

from __future__ import annotations

import numpy as np
import pytest

from ggufsm import _core
from ggufsm._core import kernels
from ggufsm.conformance.fixtures.tiny_models import TinyGemma3Spec, TinyLlamaSpec, write_tiny_gemma3, write_tiny_llama
from ggufsm.reference.model.gguf_file import open_gguf


@pytest.fixture(autouse=True)
def default_shape_back():
    yield
    kernels.set_step_shape()


def logits(core, threads: int, tokens: list[int], prompt: int, **shape) -> np.ndarray:
    kernels.set_step_shape(**shape)
    session = _core.LlamaSession(_core.LlamaModel(core, threads), len(tokens) + 8)
    out = [np.array(session.prefill(tokens[:prompt], 0), copy=True)]
    out += [np.array(session.decode(tokens[pos], pos), copy=True) for pos in range(prompt, len(tokens))]
    return np.stack(out)


@pytest.mark.parametrize("layer_walk", [True, False], ids=["walked", "dispatched"])
@pytest.mark.parametrize("write,spec", [(write_tiny_llama, TinyLlamaSpec()), (write_tiny_gemma3, TinyGemma3Spec())],
                         ids=["llama", "gemma3"])
def test_rotations_computed_once_a_pass_give_the_logits_of_rotations_computed_per_layer(tmp_path, write, spec, layer_walk):
    core = open_gguf(write(tmp_path / "m.gguf")).core
    tokens = np.random.default_rng(11).integers(3, spec.n_vocab, size=40).tolist()
    for threads in (1, 2):
        again = logits(core, threads, tokens, 30, layer_walk=layer_walk, rope_once=False)
        once = logits(core, threads, tokens, 30, layer_walk=layer_walk, rope_once=True)
        assert np.array_equal(once.view(np.uint32), again.view(np.uint32)), f"{threads} threads"
