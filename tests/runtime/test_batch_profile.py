"""A DecodeBatch profiles its passes as a session does (`ggufsm bench batch --split` reads it): off by default,
counting every pass and row while on, keeping its figures when turned off, and changing no logits."""

from __future__ import annotations

import numpy as np

from ggufsm import _core
from ggufsm.conformance.fixtures.tiny_models import write_tiny_llama
from ggufsm.reference.model.gguf_file import open_gguf


def sessions(model, n):
    made = [_core.LlamaSession(model, 32) for _ in range(n)]
    for i, s in enumerate(made):
        s.prefill([1 + i, 2, 3], 0)
    return made


def test_a_batch_profiles_each_pass_and_row_only_while_profiling_is_on(tmp_path):
    model = _core.LlamaModel(open_gguf(write_tiny_llama(tmp_path / "tiny.gguf")).core, 2)
    batch = _core.DecodeBatch(model)
    assert batch.profile is None
    together = sessions(model, 3)
    batch.set_profiling(True)
    for step in range(2):
        batch.decode(together, [4, 5, 6], [3 + step] * 3)
    batch.set_profiling(False)
    batch.decode(together, [4, 5, 6], [5] * 3)
    profile = batch.profile
    assert (profile["passes"], profile["rows"]) == (2, 6)
    ops = {op["op"] for op in profile["ops"]}
    assert {"attention", "kv store", "matmul gate/up", "matmul output (lm head)"} <= ops
    assert all(op["seconds"] >= 0 and op["calls"] > 0 for op in profile["ops"])


def test_profiling_a_batch_changes_none_of_its_logits(tmp_path):
    model = _core.LlamaModel(open_gguf(write_tiny_llama(tmp_path / "tiny.gguf")).core, 2)
    plain, profiled = _core.DecodeBatch(model), _core.DecodeBatch(model)
    profiled.set_profiling(True)
    a, b = sessions(model, 3), sessions(model, 3)
    plain.decode(a, [7, 8, 9], [3, 3, 3])
    profiled.decode(b, [7, 8, 9], [3, 3, 3])
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x.logits, y.logits)
