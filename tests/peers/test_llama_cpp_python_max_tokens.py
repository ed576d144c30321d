"""The comparison page says llama-cpp-python's `create_completion` can return more tokens than
`max_tokens`. This shows it is the library's own count, not the adapter's: its `usage` says the same
number, and it happens exactly where the max_tokens-th token's text ends inside a UTF-8 character
(opt-in: needs llama-cpp-python; the kit's tiny fixtures, whose byte tokens make that common)."""

from __future__ import annotations

import pytest

pytestmark = [pytest.mark.peer]
llama_cpp = pytest.importorskip("llama_cpp", reason="llama-cpp-python is not installed")

PROMPT = "Once upon a time"


def _ends_inside_a_character(text: bytes) -> bool:
    """A UTF-8 lead byte among the last three whose character would need bytes past the end (the test
    the library's hold-back makes)."""
    tail = text[-3:]
    for index, byte in enumerate(tail):
        needs = 4 if byte >= 0xF0 else 3 if byte >= 0xE0 else 2 if byte >= 0xC0 else 0
        if needs > len(tail) - index:
            return True
    return False


@pytest.fixture(scope="module")
def llm(tiny_inputs):
    model = llama_cpp.Llama(model_path=tiny_inputs.model, n_ctx=128, n_threads=1, verbose=False)
    yield model
    model.close()


def _no_eos(llm):
    """Ban end-of-generation, as the adapter does for stop_at_eos=False: every request ends for length."""
    def ban(input_ids, scores):
        scores[llm.token_eos()] = -float("inf")
        return scores
    return llama_cpp.LogitsProcessorList([ban])


def _greedy(llm, n: int) -> list[int]:
    tokens = []
    for token in llm.generate(llm.tokenize(PROMPT.encode()), temp=0.0, top_k=1, logits_processor=_no_eos(llm)):
        tokens.append(int(token))
        if len(tokens) == n:
            return tokens
    return tokens


# max_tokens -> the tokens create_completion makes on the fixture (measured: 25 of the values 1-69 overrun)
MADE = {4: 4, 8: 9, 64: 65}


def test_create_completion_itself_makes_more_than_max_tokens_where_the_last_one_ends_inside_a_character(llm):
    greedy = _greedy(llm, 70)
    for max_tokens, made in MADE.items():
        completion = llm.create_completion(PROMPT, max_tokens=max_tokens, temperature=0.0, top_k=1,
                                           logits_processor=_no_eos(llm))
        assert completion["choices"][0]["finish_reason"] == "length"
        assert completion["usage"]["completion_tokens"] == made
        assert _ends_inside_a_character(llm.detokenize(greedy[:max_tokens])) == (made > max_tokens)


def test_the_adapter_reports_the_tokens_the_library_counts(tiny_inputs):
    from ggufsm.conformance.adapters.llama_cpp_python import make_adapter

    adapter = make_adapter()
    try:
        assert adapter.call("init_runtime", {"n_ctx": 128, "n_threads": 1}).ok
        assert adapter.call("load_model", {"path": tiny_inputs.model}).ok
        reply = adapter.call("generate", {"prompt": PROMPT, "max_tokens": 8, "stop_at_eos": False,
                                          "sampling": {"temperature": 0.0}})
    finally:
        adapter.close()
    llm = llama_cpp.Llama(model_path=tiny_inputs.model, n_ctx=128, n_threads=1, verbose=False)
    try:
        usage = llm.create_completion(PROMPT, max_tokens=8, temperature=0.0,
                                      logits_processor=_no_eos(llm))["usage"]["completion_tokens"]
        assert reply.value["token_ids"] == _greedy(llm, usage)
    finally:
        llm.close()
    assert len(reply.value["token_ids"]) == usage == 9
