"""Where the forward reads its weights from: in place (the file's map) or one huge-page copy made at load.
The placement changes where the bytes are, never the numbers."""

from __future__ import annotations

import numpy as np
import pytest

from ggufsm import _core
from ggufsm.conformance.fixtures.tiny_models import write_tiny_gemma3, write_tiny_llama
from ggufsm.reference.model.gguf_file import open_gguf

TOKENS = [5, 17, 3, 88, 42, 0, 7]


def logits_of(model):
    session = _core.LlamaSession(model, 32)
    out = [session.prefill(TOKENS[:4], 0).copy()]
    out += [session.decode(t, 4 + i).copy() for i, t in enumerate(TOKENS[4:])]
    return out


@pytest.mark.parametrize("write", [write_tiny_llama, write_tiny_gemma3])
def test_the_huge_page_copy_gives_the_same_logits_as_the_weights_in_place(write, tmp_path):
    core = open_gguf(write(tmp_path / "m.gguf")).core
    in_place, copied = _core.LlamaModel(core, 2), _core.LlamaModel(core, 2, huge_pages=True)
    assert in_place.weights_copied == 0 and in_place.weights_in_huge_pages == 0
    assert copied.weights_copied >= copied.weights_mapped and copied.weights_copied % (2 << 20) == 0
    for a, b in zip(logits_of(in_place), logits_of(copied), strict=True):
        np.testing.assert_array_equal(a, b)


def test_the_copy_outlives_the_file_object_that_made_it(tmp_path):
    model = _core.LlamaModel(open_gguf(write_tiny_llama(tmp_path / "m.gguf")).core, 1, huge_pages=True)
    expected = logits_of(_core.LlamaModel(open_gguf(tmp_path / "m.gguf").core, 1))
    for a, b in zip(expected, logits_of(model), strict=True):
        np.testing.assert_array_equal(a, b)
