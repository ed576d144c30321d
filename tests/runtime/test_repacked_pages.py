"""The repacked matrices' own mapping starts on a 2 MiB boundary, so the kernel can back every whole 2 MiB
of it with a huge page (transparent huge pages back only aligned ranges; an unaligned start left the first
and last partial 2 MiB on 4 KiB pages, by where ASLR put the mapping)."""

from __future__ import annotations

import pytest
from gguf import GGMLQuantizationType

from ggufsm import _core
from ggufsm.conformance.fixtures.tiny_models import write_tiny_llama
from ggufsm.reference.model.gguf_file import open_gguf

HUGE_PAGE = 2 << 20


@pytest.mark.parametrize("n_threads", [1, 2])
def test_the_repacked_matrices_start_on_a_huge_page_boundary(tmp_path, n_threads):
    path = write_tiny_llama(tmp_path / "q4_0.gguf", seed=0, matrix_type=GGMLQuantizationType.Q4_0)
    with open_gguf(path) as model:
        for _ in range(4):  # each build maps anew: not one lucky placement
            forward = _core.LlamaModel(model.core, n_threads)
            assert forward.weights_repacked > 0
            assert forward.repacked_address % HUGE_PAGE == 0


def test_a_model_without_a_repack_has_no_repacked_mapping(tmp_path):
    path = write_tiny_llama(tmp_path / "q4_0.gguf", seed=0, matrix_type=GGMLQuantizationType.Q4_0)
    with open_gguf(path) as model:
        assert _core.LlamaModel(model.core, 1, repack=False).repacked_address == 0
        # The huge-page copy is written in place: no mapping of the repack's own.
        assert _core.LlamaModel(model.core, 1, huge_pages=True).repacked_address == 0
