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


def anonymous_read_only_entries() -> dict[int, int]:
    """Size in bytes -> AnonHugePages bytes of each anonymous read-only mapping in /proc/self/smaps."""
    entries, current = {}, None
    with open("/proc/self/smaps") as smaps:
        for line in smaps:
            head = line.split()
            if "-" in head[0] and len(head) >= 5 and ":" not in head[0]:
                lo, hi = (int(a, 16) for a in head[0].split("-"))
                current = hi - lo if head[1].startswith("r--") and len(head) == 5 else None
            elif current is not None and line.startswith("AnonHugePages:"):
                entries[current] = int(head[1]) * 1024
    return entries


@pytest.mark.real_model
def test_the_huge_page_copy_reads_back_its_own_2_mib_pages_beside_gemma3s_repacked_matrices():
    """Gemma 3's Q4_K matrices are repacked into an anonymous read-only mapping that the kernel may place right
    below the copy; merged with it, the copy had no smaps entry of its own and read 0 bytes on 2 MiB pages
    however many it had. The copy's entry is its own, and the figure is its AnonHugePages (0 on a host without
    transparent huge pages, or that refused them: the rule holds either way)."""
    from real_models import real_model_path

    core = open_gguf(real_model_path("gemma3")).core
    in_place = _core.LlamaModel(core, 2)  # the bench's order: the repacked matrices first, the copy next
    copied = _core.LlamaModel(core, 2, huge_pages=True)
    entries = anonymous_read_only_entries()
    assert copied.weights_copied in entries  # its own entry, exactly the copy
    assert copied.weights_in_huge_pages == entries[copied.weights_copied] <= copied.weights_copied
    del in_place
