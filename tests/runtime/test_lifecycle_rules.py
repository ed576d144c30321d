"""The seed's lifecycle rules, each proven on the reference Runtime with a tiny real GGUF model."""

from __future__ import annotations

import pytest

from ggufsm.reference.runtime import Runtime
from ggufsm.spec import errors

GREEDY = {"temperature": 0.0}
PROMPT = "hello world"


def greedy_tokens(runtime: Runtime, prompt=PROMPT, n=8) -> list[int]:
    return runtime.generate(prompt, n, stop_at_eos=False, **GREEDY).token_ids


def fresh_greedy(model_path, prompt=PROMPT, n=8) -> list[int]:
    runtime = Runtime()
    runtime.init_runtime(n_ctx=64, n_threads=1)
    runtime.load_model(model_path)
    try:
        return greedy_tokens(runtime, prompt, n)
    finally:
        runtime.free()


def test_generate_before_init_initialises_lazily_then_reports_model_not_loaded():
    runtime = Runtime()
    assert runtime.state == "Uninitialized"
    with pytest.raises(errors.ModelNotLoaded) as raised:
        runtime.generate(PROMPT)
    assert raised.value.state_after == "Initialized"
    assert runtime.state == "Initialized"


def test_load_before_init_initialises_lazily_and_installs_the_model(tiny_model):
    runtime = Runtime()
    runtime.load_model(tiny_model)
    assert runtime.state == "Ready"
    assert {"model", "tokenizer", "kv_cache", "scratch", "logits"} <= set(runtime.diagnostics()["resident"])


def test_free_before_init_changes_nothing():
    runtime = Runtime()
    runtime.free()
    assert runtime.state == "Uninitialized"


def test_invalid_config_is_refused_and_creates_nothing():
    runtime = Runtime()
    with pytest.raises(errors.InvalidInput, match="n_ctx"):
        runtime.init_runtime(n_ctx=-5)
    assert runtime.state == "Uninitialized"


def test_generate_produces_tokens_and_opens_a_continuation(ready_runtime):
    result = ready_runtime.generate(PROMPT, 5, stop_at_eos=False, **GREEDY)
    assert len(result.token_ids) == 5 and result.finish_reason == "length"
    assert ready_runtime.state == "ContinuationReady"
    assert ready_runtime.diagnostics()["request"]["generated_tokens"] == 5


def test_failed_load_records_the_error_and_installs_nothing(tmp_path):
    runtime = Runtime()
    with pytest.raises(errors.ModelUnavailable) as raised:
        runtime.load_model(tmp_path / "missing.gguf")
    assert "missing.gguf" in raised.value.message
    assert runtime.state == "RecoverableError"
    assert runtime.last_error.code == "ModelUnavailable"
    assert "model" not in runtime.diagnostics()["resident"]
    with pytest.raises(errors.ModelNotLoaded):
        runtime.generate(PROMPT)


def test_malformed_model_is_refused_as_invalid_model(corrupt_model):
    runtime = Runtime()
    with pytest.raises(errors.InvalidModel):
        runtime.load_model(corrupt_model)
    assert runtime.state == "RecoverableError"


def test_failed_replace_keeps_the_old_model_and_its_greedy_output(ready_runtime, corrupt_model):
    before = greedy_tokens(ready_runtime)
    with pytest.raises(errors.InvalidModel):
        ready_runtime.replace_model(corrupt_model)
    assert ready_runtime.state == "RecoverableError"
    assert "model" in ready_runtime.diagnostics()["resident"]
    assert greedy_tokens(ready_runtime) == before


def test_successful_replace_installs_the_new_model(ready_runtime, other_tiny_model):
    ready_runtime.replace_model(other_tiny_model)
    assert ready_runtime.state == "Ready"
    assert greedy_tokens(ready_runtime) == fresh_greedy(other_tiny_model)


def test_each_generate_clears_the_previous_request(ready_runtime):
    ready_runtime.generate(PROMPT, 6, stop_at_eos=False, **GREEDY)
    second = ready_runtime.generate("another prompt", 2, stop_at_eos=False, **GREEDY)
    request = ready_runtime.diagnostics()["request"]
    assert request["generated_tokens"] == 2 == len(second.token_ids)
    assert request["prompt_tokens"] == len(second.prompt_token_ids)
    assert ready_runtime.generate(PROMPT, 8, stop_at_eos=False, **GREEDY).token_ids == fresh_greedy(
        ready_runtime.diagnostics()["model"]["source"])


def test_prompt_over_the_context_is_refused_and_leaves_no_partial_state(tiny_model):
    runtime = Runtime()
    runtime.init_runtime(n_ctx=16, n_threads=1)
    runtime.load_model(tiny_model)
    too_long = list(range(3, 3 + 16))
    with pytest.raises(errors.ContextOverflow, match="16"):
        runtime.generate(too_long, 4)
    assert runtime.state == "RecoverableError"
    assert "request" not in runtime.diagnostics()["resident"]
    after = runtime.generate([5, 6, 7], 6, stop_at_eos=False, **GREEDY).token_ids
    fresh = Runtime()
    fresh.init_runtime(n_ctx=16, n_threads=1)
    fresh.load_model(tiny_model)
    assert after == fresh.generate([5, 6, 7], 6, stop_at_eos=False, **GREEDY).token_ids


def test_generation_stops_at_the_context_end_and_the_next_token_overflows(tiny_model):
    runtime = Runtime()
    runtime.init_runtime(n_ctx=12, n_threads=1)
    runtime.load_model(tiny_model)
    result = runtime.generate([5, 6, 7], 100, stop_at_eos=False, **GREEDY)
    assert result.finish_reason == "context" and len(result.token_ids) == 12 - 3
    with pytest.raises(errors.ContextOverflow):
        runtime.generate_next_token()
    assert runtime.state == "RecoverableError"


def test_reset_makes_output_equal_a_fresh_runtime(ready_runtime, tiny_model):
    ready_runtime.generate("some other text first", 6, temperature=1.0, seed=3)
    ready_runtime.reset()
    assert ready_runtime.state == "Ready"
    assert "request" not in ready_runtime.diagnostics()["resident"]
    assert greedy_tokens(ready_runtime) == fresh_greedy(tiny_model)


def test_continuation_equals_one_longer_generate(ready_runtime, tiny_model):
    first = ready_runtime.generate(PROMPT, 3, stop_at_eos=False, **GREEDY).token_ids
    more = [ready_runtime.generate_next_token().token_id for _ in range(5)]
    assert first + more == fresh_greedy(tiny_model, n=8)


def test_next_token_without_a_request_is_refused_and_changes_nothing(ready_runtime):
    with pytest.raises(errors.InvalidState):
        ready_runtime.generate_next_token()
    assert ready_runtime.state == "Ready"


def test_out_of_range_sampling_is_refused_keeping_the_model_and_the_old_values(ready_runtime):
    ready_runtime.set_sampling(temperature=0.5, top_k=10)
    with pytest.raises(errors.InvalidSampling, match="top_p"):
        ready_runtime.set_sampling(top_p=1.5)
    assert ready_runtime.state == "RecoverableError"
    assert ready_runtime.diagnostics()["sampling"]["top_p"] != 1.5
    assert "model" in ready_runtime.diagnostics()["resident"]
    ready_runtime.set_sampling(top_p=0.9)
    assert ready_runtime.state == "Ready"


def test_same_seed_gives_the_same_tokens(ready_runtime):
    sampled = {"temperature": 1.0, "top_k": 0, "top_p": 1.0, "min_p": 0.0, "seed": 1234}
    first = ready_runtime.generate(PROMPT, 12, stop_at_eos=False, **sampled).token_ids
    second = ready_runtime.generate(PROMPT, 12, stop_at_eos=False, **sampled).token_ids
    assert first == second


def test_free_releases_everything_and_generation_then_reports_model_not_loaded(ready_runtime):
    ready_runtime.free()
    diagnostics = ready_runtime.diagnostics()
    assert ready_runtime.state == "Freed"
    assert not {"model", "tokenizer", "kv_cache", "scratch", "logits", "request"} & set(diagnostics["resident"])
    assert diagnostics["memory"]["total"] == 0
    with pytest.raises(errors.ModelNotLoaded):
        ready_runtime.generate(PROMPT)
    ready_runtime.free()
    assert ready_runtime.state == "Freed"


def test_load_after_free_works_again(ready_runtime, tiny_model):
    ready_runtime.free()
    ready_runtime.load_model(tiny_model)
    assert greedy_tokens(ready_runtime) == fresh_greedy(tiny_model)


def test_load_while_a_model_is_resident_is_refused(ready_runtime, other_tiny_model):
    with pytest.raises(errors.InvalidState, match="replace_model"):
        ready_runtime.load_model(other_tiny_model)
    assert ready_runtime.state == "Ready"


def test_load_from_bytes_equals_load_from_path(tiny_model):
    runtime = Runtime()
    runtime.init_runtime(n_ctx=64, n_threads=1)
    runtime.load_model(tiny_model.read_bytes())
    assert greedy_tokens(runtime) == fresh_greedy(tiny_model)
