"""Chat prompts from templates: the real models' formats, the sandbox, named errors."""

from __future__ import annotations

import ctypes
from datetime import datetime

import pytest

from ggufsm.reference.tokenizers.chat import (
    GEMMA_TEMPLATE,
    chat_template_for,
    given_template,
    render_chat,
    render_chat_for,
)
from ggufsm.spec.errors import InvalidInput, InvalidModel, UnsupportedModel

CONVERSATION = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "Hi  "},
    {"role": "assistant", "content": "Hello!"},
    {"role": "user", "content": "2+2?"},
]


@pytest.mark.real_model
def test_smollm2_template_adds_its_default_system_turn_and_the_generation_prompt(real_tokenizers):
    tokenizer = real_tokenizers("smollm2")
    prompt = render_chat_for(tokenizer, [{"role": "user", "content": "Hi"}])
    assert prompt.startswith("<|im_start|>system\nYou are a helpful AI assistant named SmolLM")
    assert prompt.endswith("<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n")
    ids = tokenizer.encode(prompt)
    im_start, im_end = tokenizer.token_to_id["<|im_start|>"], tokenizer.token_to_id["<|im_end|>"]
    assert ids.count(im_start) == 3 and ids.count(im_end) == 2


@pytest.mark.real_model
def test_gemma3_without_a_template_in_the_file_gets_its_architectures_turn_format_and_one_bos(real_tokenizers):
    tokenizer = real_tokenizers("gemma3")
    assert tokenizer.chat_template is None
    assert chat_template_for(tokenizer, "gemma3").origin == "built-in"
    prompt = render_chat_for(tokenizer, CONVERSATION, architecture="gemma3")
    assert prompt == ("<start_of_turn>user\nBe brief.\n\nHi<end_of_turn>\n<start_of_turn>model\nHello!<end_of_turn>\n"
                      "<start_of_turn>user\n2+2?<end_of_turn>\n<start_of_turn>model\n")
    ids = tokenizer.encode(prompt)
    assert ids[:2] == [tokenizer.bos_id, tokenizer.token_to_id["<start_of_turn>"]]
    assert ids.count(tokenizer.bos_id) == 1


@pytest.mark.peer
def test_the_gemma_template_renders_as_llama_cpps_built_in_gemma_template():
    llama_cpp = pytest.importorskip("llama_cpp")
    messages = (llama_cpp.llama_chat_message * len(CONVERSATION))(
        *[llama_cpp.llama_chat_message(role=m["role"].encode(), content=m["content"].encode()) for m in CONVERSATION])
    buffer = ctypes.create_string_buffer(4096)
    n = llama_cpp.llama_chat_apply_template(b"gemma", messages, len(CONVERSATION), True, buffer, len(buffer))
    assert render_chat(GEMMA_TEMPLATE, CONVERSATION) == buffer.raw[:n].decode("utf-8")


def test_a_template_that_refuses_the_messages_gives_invalid_input():
    with pytest.raises(InvalidInput, match="roles must alternate"):
        render_chat(GEMMA_TEMPLATE, [{"role": "user", "content": "a"}, {"role": "user", "content": "b"}])


def test_a_template_that_does_not_parse_is_an_invalid_model():
    with pytest.raises(InvalidModel, match="does not parse"):
        render_chat("{% for m in messages %}", [])


@pytest.mark.parametrize("template", ["{{ ''.__class__.__mro__ }}", "{{ messages.append(1) }}"])
def test_templates_run_in_a_sandbox(template):
    with pytest.raises(InvalidModel, match="unsafe"):
        render_chat(template, [])


@pytest.mark.parametrize("messages", [[{"role": "user"}], [{"role": "user", "content": 3}], "hi", [["user", "hi"]]])
def test_malformed_messages_are_invalid_input(messages):
    with pytest.raises(InvalidInput, match="messages"):
        render_chat(GEMMA_TEMPLATE, messages)


def test_templates_get_strftime_now_and_a_tojson_that_keeps_unicode():
    rendered = render_chat("{{ strftime_now('%Y') }} {{ messages | tojson }}", [{"role": "user", "content": "日本"}])
    assert rendered == f'{datetime.now():%Y} [{{"role": "user", "content": "日本"}}]'


def test_add_generation_prompt_false_leaves_the_prompt_open():
    assert not render_chat(GEMMA_TEMPLATE, CONVERSATION[:2], add_generation_prompt=False).endswith("model\n")


class VocabularyOnly:
    """A tokenizer's face as chat templates see it: no template, a few control tokens."""

    def __init__(self, *control_tokens: str):
        self.chat_template = None
        self.token_to_id = {text: i for i, text in enumerate(control_tokens)}


def test_a_file_without_a_template_whose_architecture_has_none_is_refused_saying_how_to_pass_one():
    with pytest.raises(UnsupportedModel, match=r"no tokenizer.chat_template.*'llama'.*--chat-template FILE"):
        chat_template_for(VocabularyOnly("<|im_start|>", "<|im_end|>"), "llama")


def test_an_architectures_template_is_refused_when_the_vocabulary_lacks_its_control_tokens():
    with pytest.raises(UnsupportedModel, match=r"lacks \['<end_of_turn>'\].*--chat-template FILE"):
        chat_template_for(VocabularyOnly("<start_of_turn>"), "gemma3")


def test_the_files_template_comes_before_the_architectures():
    tokenizer = VocabularyOnly("<start_of_turn>", "<end_of_turn>")
    tokenizer.chat_template = "{{ messages[0]['content'] }}"
    assert chat_template_for(tokenizer, "gemma3").source == tokenizer.chat_template


def test_a_given_template_that_does_not_parse_is_the_callers_invalid_input_not_the_models():
    template = given_template("{% for m in messages %}", "the template in bad.jinja")
    tokenizer = VocabularyOnly()
    tokenizer.tokens, tokenizer.bos_id, tokenizer.eos_id, tokenizer.add_bos = [], None, None, False
    with pytest.raises(InvalidInput, match="the given chat template does not parse"):
        render_chat_for(tokenizer, [{"role": "user", "content": "hi"}], template=template)
