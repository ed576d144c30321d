"""A batched decode step attends all its sessions in one dispatch (cpp/kernels/attention.h,
attention_decode_batch), whatever their positions: a session far enough along has its positions split into
segments across threads and recombined, one near the start does not, and Gemma 3's sliding layers attend a
window. The rule: sessions at such mixed positions still get, at every step, the logits their own decode
gives, to the last bit, on the tiny models and the real ones."""

from __future__ import annotations

import pytest
from batch_twins import batch_decodes_as_alone

from ggufsm import _core
from ggufsm.conformance.fixtures.tiny_models import write_tiny_gemma3, write_tiny_llama
from ggufsm.reference.model.gguf_file import open_gguf

# Prompt lengths: one short (one unit per KV head), two past 512 positions (segmented at 2 threads; past the
# tiny Gemma 3's sliding window too).
LENGTHS = [9, 520, 600]


def mixed_positions_equal_alone(path, lengths, steps: int) -> None:
    model = _core.LlamaModel(open_gguf(path).core, 2)
    n_ctx = max(lengths) + steps + 16
    n_vocab = model.n_vocab
    prompts = [[(7 * i + 13 * t + 1) % n_vocab for t in range(length)] for i, length in enumerate(lengths)]
    batch_decodes_as_alone(model, prompts, n_ctx, steps)


@pytest.mark.parametrize("write", [write_tiny_llama, write_tiny_gemma3], ids=["llama", "gemma3"])
def test_sessions_at_mixed_long_positions_decode_as_alone_on_the_tiny_models(write, tmp_path):
    mixed_positions_equal_alone(write(tmp_path / "tiny.gguf"), LENGTHS, steps=2)


@pytest.mark.real_model
@pytest.mark.parametrize("name", ["smollm2", "gemma3"])
def test_sessions_at_mixed_long_positions_decode_as_alone_on_the_real_models(name, request):
    mixed_positions_equal_alone(request.getfixturevalue(f"{name}_path"), [5, 600], steps=2)
