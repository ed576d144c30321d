"""The reference forward on SmolLM2-135M, alone and beside llama.cpp (the peer)."""

from __future__ import annotations

import pytest

from ggufsm.reference.architectures import load_reference_model
from ggufsm.reference.architectures.weights import read_tensors

pytestmark = pytest.mark.real_model


@pytest.fixture(scope="module")
def smollm2(request):
    from real_models import real_model_path

    path = real_model_path("smollm2")
    return path, load_reference_model(read_tensors(path))


def test_smollm2_hyperparameters_come_from_its_metadata(smollm2):
    _, model = smollm2
    hp = model.hp
    assert (hp.n_layer, hp.n_embd, hp.n_head, hp.n_head_kv, hp.head_dim, hp.n_ff, hp.n_vocab) == (30, 576, 9, 3, 64, 1536, 49152)
    assert hp.rope_freq_base == 100000.0 and hp.rms_eps == pytest.approx(1e-5)
    assert model.weights.output.weight is model.weights.token_embd


@pytest.mark.peer
def test_reference_follows_llama_cpp_except_at_near_ties(smollm2):
    """Every next-token choice along llama.cpp's greedy text is ours too, unless
    llama.cpp's own top two logits are within 0.5 of each other (a near tie that
    its 8-bit activations and f16 KV cache can tip either way: docs/fidelity.md)."""
    pytest.importorskip("llama_cpp")
    from measure_fidelity import CHAT_PROMPTS, PLAIN_PROMPTS, GgufsmForward, LlamaCppForward, chat_prompt, compare

    path, model = smollm2
    oracle = LlamaCppForward(path, 256)
    ours = GgufsmForward(model, 256)
    template = oracle.llm.metadata["tokenizer.chat_template"]
    n_tokens, agreed, total = 32, 0, 0
    for text in PLAIN_PROMPTS[:2] + [chat_prompt(template, q) for q in CHAT_PROMPTS[:2]]:
        prompt = oracle.llm.tokenize(text.encode(), add_bos=True, special=True)
        figures = compare(ours, oracle.run(prompt, n_tokens), oracle, prompt, n_tokens)
        assert figures["top5"] >= 4, (text, figures)
        assert figures["forced_max_abs"] < 2.5, (text, figures)
        assert all(margin < 0.5 for margin in figures["miss_margins"]), (text, figures)
        agreed, total = agreed + figures["forced_agree"], total + n_tokens
    assert agreed / total >= 0.95
