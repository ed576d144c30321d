"""Chat prompts: a model's `tokenizer.chat_template` (Jinja) applied to a list of messages.

Templates are untrusted text from the model file, so they run in Jinja's
immutable sandbox, with the helpers Hugging Face templates are written
against: `raise_exception`, `strftime_now`, and a `tojson` that keeps
non-ASCII text as is.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from functools import lru_cache
from typing import Any

import jinja2
from jinja2.ext import loopcontrols
from jinja2.sandbox import ImmutableSandboxedEnvironment

from ggufsm.spec.errors import InvalidInput, InvalidModel, UnsupportedModel

# Used when a file carries no template (the Gemma 3 GGUF here has none); chosen by the
# control tokens the vocabulary has. Gemma's turn format: the system text opens the first
# user turn, the assistant's role is "model".
GEMMA_TEMPLATE = """{{ bos_token }}
{%- if messages and messages[0]['role'] == 'system' -%}
  {%- set first_user_prefix = messages[0]['content'] + '\n\n' -%}
  {%- set loop_messages = messages[1:] -%}
{%- else -%}
  {%- set first_user_prefix = '' -%}
  {%- set loop_messages = messages -%}
{%- endif -%}
{%- for message in loop_messages -%}
  {%- if (message['role'] == 'user') != (loop.index0 % 2 == 0) -%}
    {{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}
  {%- endif -%}
  {%- set role = 'model' if message['role'] == 'assistant' else message['role'] -%}
  {{ '<start_of_turn>' + role + '\n' + (first_user_prefix if loop.first else '') + message['content'] | trim + '<end_of_turn>\n' }}
{%- endfor -%}
{%- if add_generation_prompt -%}{{ '<start_of_turn>model\n' }}{%- endif -%}"""

CHATML_TEMPLATE = """{%- for message in messages -%}
{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>\n' }}
{%- endfor -%}
{%- if add_generation_prompt -%}{{ '<|im_start|>assistant\n' }}{%- endif -%}"""

FALLBACK_TEMPLATES = (
    (("<start_of_turn>", "<end_of_turn>"), GEMMA_TEMPLATE),
    (("<|im_start|>", "<|im_end|>"), CHATML_TEMPLATE),
)


class TemplateRefused(Exception):
    """raise_exception() was called by the template."""


def _raise_exception(message: str):
    raise TemplateRefused(message)


def _tojson(value: Any, indent: int | None = None, separators=None, sort_keys: bool = False) -> str:
    return json.dumps(value, ensure_ascii=False, indent=indent, separators=separators, sort_keys=sort_keys)


def _strftime_now(format: str) -> str:
    return datetime.now().strftime(format)


@lru_cache(maxsize=16)
def _compile(template: str) -> jinja2.Template:
    environment = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[loopcontrols])
    environment.filters["tojson"] = _tojson
    environment.globals["raise_exception"] = _raise_exception
    environment.globals["strftime_now"] = _strftime_now
    try:
        return environment.from_string(template)
    except jinja2.TemplateSyntaxError as error:
        raise InvalidModel(f"tokenizer.chat_template does not parse: {error.message} (line {error.lineno})") from None


def render_chat(template: str, messages: Sequence[dict], *, add_generation_prompt: bool = True,
                bos_token: str = "", eos_token: str = "", **extra: Any) -> str:
    """The prompt text the template makes of messages ({'role': ..., 'content': ...} dicts)."""
    _check_messages(messages)
    compiled = _compile(template)
    try:
        return compiled.render(messages=list(messages), add_generation_prompt=add_generation_prompt,
                               bos_token=bos_token, eos_token=eos_token, **extra)
    except TemplateRefused as refusal:
        raise InvalidInput(f"the chat template refused the messages: {refusal}") from None
    except jinja2.exceptions.SecurityError as error:
        raise InvalidModel(f"tokenizer.chat_template tried an unsafe operation: {error}") from None
    except (jinja2.TemplateError, TypeError, KeyError, IndexError, AttributeError) as error:
        raise InvalidInput(f"the chat template failed on these messages: {type(error).__name__}: {error}") from None


def _check_messages(messages: Sequence[dict]) -> None:
    if isinstance(messages, (str, bytes)) or not isinstance(messages, Sequence):
        raise InvalidInput(f"messages must be a list of dicts, got {type(messages).__name__}")
    for i, message in enumerate(messages):
        if not isinstance(message, dict) or not isinstance(message.get("role"), str) \
                or not isinstance(message.get("content"), str):
            raise InvalidInput(f"messages[{i}] must be a dict with string 'role' and 'content', got {message!r:.80}")


def chat_template_for(tokenizer) -> str:
    """The file's template, else a built-in one that fits the vocabulary's control tokens."""
    if tokenizer.chat_template:
        return tokenizer.chat_template
    for needed, template in FALLBACK_TEMPLATES:
        if all(text in tokenizer.token_to_id for text in needed):
            return template
    raise UnsupportedModel("the model has no tokenizer.chat_template and no built-in template fits its vocabulary")


def render_chat_for(model_or_tokenizer, messages: Sequence[dict], *, add_generation_prompt: bool = True) -> str:
    """The chat prompt for a loaded model (anything with .tokenizer) or a tokenizer, ready
    for `tokenizer.encode(prompt)`. When the tokenizer adds bos/eos itself, the template gets
    empty bos/eos strings so the prompt does not start with two of them (as llama.cpp does)."""
    tokenizer = getattr(model_or_tokenizer, "tokenizer", model_or_tokenizer)

    def token_text(token_id: int | None, added_by_encode: bool) -> str:
        return "" if token_id is None or added_by_encode else tokenizer.tokens[token_id]

    return render_chat(chat_template_for(tokenizer), messages, add_generation_prompt=add_generation_prompt,
                       bos_token=token_text(tokenizer.bos_id, tokenizer.add_bos),
                       eos_token=token_text(tokenizer.eos_id, False))
