"""Every batch size a decode step can have runs each session's step bit for bit as alone: 2 to 8 sessions go
through the few-rows kernels (passes of 2, 3 and 4 activation rows: cpp/kernels/x86/matmul_rows.h rows_few and
matmul_rows8.cpp rows8_few), past 8 through the prefill drivers; on the tiny models and on the real ones."""

from __future__ import annotations

import pytest
from batch_twins import batch_decodes_as_alone

from ggufsm import _core
from ggufsm.conformance.fixtures.tiny_models import write_tiny_gemma3, write_tiny_llama
from ggufsm.reference.model.gguf_file import open_gguf

N_CTX = 32


def batched_steps_equal_alone(path, sizes, steps: int) -> None:
    """For each size k: k sessions decoding as one batch and k twins decoding alone, from different prompts,
    give the same logits to the last bit at every step."""
    model = _core.LlamaModel(open_gguf(path).core, 2)
    batch = _core.DecodeBatch(model)
    for k in sizes:
        prompts = [[1 + i, 2 + 2 * i, 3 + i][: 1 + i % 3] for i in range(k)]
        batch_decodes_as_alone(model, prompts, N_CTX, steps, label=f"k={k} ", batch=batch)


@pytest.mark.parametrize("write", [write_tiny_llama, write_tiny_gemma3], ids=["llama", "gemma3"])
def test_each_batch_size_from_two_to_nine_decodes_each_session_as_alone_on_the_tiny_models(write, tmp_path):
    batched_steps_equal_alone(write(tmp_path / "tiny.gguf"), range(2, 10), steps=3)


@pytest.mark.real_model
@pytest.mark.parametrize("name", ["smollm2", "gemma3"])
def test_batches_of_five_and_seven_decode_each_session_as_alone_on_the_real_models(name, request):
    # 5 runs as passes of 3 + 2 activation rows, 7 as 4 + 3: every width of the few-rows kernels.
    batched_steps_equal_alone(request.getfixturevalue(f"{name}_path"), [5, 7], steps=2)
