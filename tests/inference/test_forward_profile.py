"""The per-op profile of the fused forward (`ggufsm bench forward --profile`): it times, it never changes a number,
and it accounts for every op kind a pass runs."""

from __future__ import annotations

import numpy as np
import pytest

from ggufsm import _core
from ggufsm.conformance.fixtures.tiny_models import write_tiny_gemma3, write_tiny_llama
from ggufsm.reference.model.gguf_file import open_gguf

TOKENS = [5, 17, 3, 88, 42, 0, 7]


def run(session):
    out = [session.prefill(TOKENS[:4], 0).copy()]
    out += [session.decode(t, 4 + i).copy() for i, t in enumerate(TOKENS[4:])]
    return out


@pytest.mark.parametrize("write", [write_tiny_llama, write_tiny_gemma3])
def test_profiling_leaves_the_logits_bit_identical(write, tmp_path):
    model = _core.LlamaModel(open_gguf(write(tmp_path / "m.gguf")).core, 2)
    plain = _core.LlamaSession(model, 32)
    profiled = _core.LlamaSession(model, 32)
    profiled.set_profiling(True)
    for a, b in zip(run(plain), run(profiled), strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("write", [write_tiny_llama, write_tiny_gemma3])
def test_the_profile_counts_every_pass_and_each_op_kind_a_layer_runs(write, tmp_path):
    model = _core.LlamaModel(open_gguf(write(tmp_path / "m.gguf")).core, 2)
    session = _core.LlamaSession(model, 32)
    assert session.profile is None
    session.set_profiling(True)
    run(session)
    profile = session.profile
    assert profile["passes"] == 1 + len(TOKENS) - 4 and profile["rows"] == len(TOKENS)
    ops = {row["op"] for row in profile["ops"]}
    assert {"embed", "norms", "q/k norm + rope", "kv store", "attention", "matmul wq/wk/wv", "matmul wo",
            "matmul gate/up", "matmul down", "matmul output (lm head)", "swiglu/geglu", "residual add"} <= ops
    assert all(row["type"] for row in profile["ops"] if row["op"].startswith("matmul"))
    assert sum(row["seconds"] for row in profile["ops"]) <= profile["seconds"]
    n_layer = open_gguf(tmp_path / "m.gguf").hyperparameters["n_layer"]
    attention_calls = sum(row["calls"] for row in profile["ops"] if row["op"] == "attention")
    assert attention_calls == n_layer * profile["passes"]


def test_profiling_off_keeps_the_figures_and_adds_no_more(tmp_path):
    model = _core.LlamaModel(open_gguf(write_tiny_llama(tmp_path / "m.gguf")).core, 1)
    session = _core.LlamaSession(model, 32)
    session.set_profiling(True)
    session.prefill(TOKENS[:4], 0)
    session.set_profiling(False)
    session.decode(TOKENS[4], 4)
    assert session.profile["passes"] == 1
    session.set_profiling(True)
    assert session.profile["passes"] == 0


@pytest.mark.parametrize("write", [write_tiny_llama, write_tiny_gemma3])
def test_a_walked_step_accounts_each_member_s_time_running_parts_and_waiting_within_its_walk(write, tmp_path):
    model = _core.LlamaModel(open_gguf(write(tmp_path / "m.gguf")).core, 2)
    session = _core.LlamaSession(model, 32)
    session.prefill(TOKENS[:4], 0)
    session.set_profiling(True)
    for i, t in enumerate(TOKENS[4:]):
        session.decode(t, 4 + i)
    profile = session.profile
    walked, ran = profile["walked_seconds"], profile["ran_seconds"]
    waited = [sum(row[key] for row in profile["waits"]) for key in ("member0_seconds", "others_seconds")]
    # Member 0 walks the whole step (it never resigns) and runs every small op; a member's parts and waits
    # lie within its walk.
    assert 0 < ran[0] and walked[0] <= profile["seconds"]
    for member in (0, 1):
        assert min(ran[member], waited[member]) >= 0 and ran[member] + waited[member] <= walked[member]
    assert {row["op"] for row in profile["waits"]} <= {row["op"] for row in profile["ops"]}


def test_a_dispatched_step_has_no_walk_accounting(tmp_path):
    model = _core.LlamaModel(open_gguf(write_tiny_llama(tmp_path / "m.gguf")).core, 1)
    session = _core.LlamaSession(model, 32)
    session.set_profiling(True)
    run(session)
    assert session.profile["waits"] == [] and session.profile["walked_seconds"] == (0.0, 0.0)


def test_the_bench_profiles_a_batched_step_as_one_pass_of_every_session_s_token(tmp_path):
    """`bench forward --profile --handles K`: each decode step is K sessions' tokens in one DecodeBatch pass, so the
    profile counts one pass a step with K rows, and the table says so."""
    from ggufsm.reference.bench.op_profile import profile_model, render

    path = write_tiny_llama(tmp_path / "tiny.gguf")
    result = profile_model(path, threads=2, repeat=1, decode_tokens=3, handles=3)
    decode = result["runs"]["decode"][0]
    assert result["handles"] == 3
    assert decode["passes"] == 3 and decode["rows"] == 9
    table = render(result, 2, 1, 3, None)
    assert "each of 3 sessions batched as one pass" in table


def test_a_batched_step_s_logits_copy_has_its_own_row_and_a_one_session_step_none(tmp_path):
    """A batched pass copies each session's logits out of the shared scratch (4 x 49,152 floats a step on SmolLM2):
    its own row, not the softcap's, which a model without a softcap does not show at all."""
    from ggufsm.reference.bench.op_profile import profile_model, render

    path = write_tiny_llama(tmp_path / "tiny.gguf")
    for handles in (1, 3):
        result = profile_model(path, threads=2, repeat=1, decode_tokens=2, handles=handles)
        ops = result["runs"]["decode"][0]["ops"]
        assert (("logits copy (batched)", "") in ops) == (handles > 1)
        assert ("logit softcap", "") not in ops
        assert ("| logits copy (batched) |" in render(result, 2, 1, 2, None)) == (handles > 1)


def test_a_model_with_a_softcap_shows_its_row(tmp_path):
    from ggufsm.conformance.fixtures.tiny_models import TinyGemma3Spec

    model = _core.LlamaModel(open_gguf(write_tiny_gemma3(tmp_path / "m.gguf", TinyGemma3Spec(final_logit_softcap=30.0))).core, 2)
    session = _core.LlamaSession(model, 32)
    session.set_profiling(True)
    run(session)
    assert "logit softcap" in {row["op"] for row in session.profile["ops"]}
