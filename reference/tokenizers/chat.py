"""Chat prompts: a model's `tokenizer.chat_template` (Jinja) applied to a list of messages.

A file without a template gets its architecture's known one (Gemma's turn format,
as llama.cpp's built-in templates do); any other is refused with a named error
saying how to pass one, never guessed.

Templates are untrusted text from the model file, so they run in Jinja's
immutable sandbox, with the helpers Hugging Face templates are written
against: `raise_exception`, `strftime_now`, and a `tojson` that keeps
non-ASCII text as is.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any

import jinja2
from jinja2.ext import loopcontrols
from jinja2.sandbox import ImmutableSandboxedEnvironment

from ggufsm.spec.errors import InvalidInput, InvalidModel, UnsupportedModel

# Gemma's turn format, as llama.cpp's built-in "gemma" template (src/llama-chat.cpp) writes it:
# the system text, trimmed, opens the first user turn; the assistant's role is "model".
GEMMA_TEMPLATE = """{{ bos_token }}
{%- if messages and messages[0]['role'] == 'system' -%}
  {%- set first_user_prefix = messages[0]['content'] | trim + '\n\n' -%}
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


@dataclass(frozen=True)
class BuiltInTemplate:
    name: str                          # llama.cpp's name for the same built-in template
    source: str                        # Jinja text
    control_tokens: tuple[str, ...]    # the vocabulary must have these, or the turns would be plain text


GEMMA = BuiltInTemplate("gemma", GEMMA_TEMPLATE, ("<start_of_turn>", "<end_of_turn>"))

# A file that carries no template gets its architecture's, when the architecture has exactly
# one chat format; other architectures (llama's files use many) are refused rather than guessed.
ARCHITECTURE_TEMPLATES: dict[str, BuiltInTemplate] = {"gemma": GEMMA, "gemma2": GEMMA, "gemma3": GEMMA}

HOW_TO_PASS_A_TEMPLATE = ("pass a Jinja chat template: `--chat-template FILE` on the command line, "
                          "chat_template=TEXT in Python")


@dataclass(frozen=True)
class ChatTemplate:
    """The template a chat prompt is made with, and where it came from (the CLI says so)."""

    source: str
    origin: str     # "file", "built-in" or "given"
    description: str


class TemplateRefused(Exception):
    """raise_exception() was called by the template."""


def _raise_exception(message: str):
    raise TemplateRefused(message)


def _tojson(value: Any, indent: int | None = None, separators=None, sort_keys: bool = False) -> str:
    return json.dumps(value, ensure_ascii=False, indent=indent, separators=separators, sort_keys=sort_keys)


def _strftime_now(format: str) -> str:
    return datetime.now().strftime(format)


@lru_cache(maxsize=16)
def _compile(template: str, name: str) -> jinja2.Template:
    environment = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[loopcontrols])
    environment.filters["tojson"] = _tojson
    environment.globals["raise_exception"] = _raise_exception
    environment.globals["strftime_now"] = _strftime_now
    try:
        return environment.from_string(template)
    except jinja2.TemplateSyntaxError as error:
        raise _blame(name)(f"{name} does not parse: {error.message} (line {error.lineno})") from None


def render_chat(template: str, messages: Sequence[dict], *, add_generation_prompt: bool = True,
                bos_token: str = "", eos_token: str = "", template_name: str = "tokenizer.chat_template",
                **extra: Any) -> str:
    """The prompt text the template makes of messages ({'role': ..., 'content': ...} dicts).
    A broken template is the model's fault (InvalidModel) when it came from the file, the
    caller's (InvalidInput) when they gave it; template_name says which in the message."""
    _check_messages(messages)
    compiled = _compile(template, template_name)
    try:
        return compiled.render(messages=list(messages), add_generation_prompt=add_generation_prompt,
                               bos_token=bos_token, eos_token=eos_token, **extra)
    except TemplateRefused as refusal:
        raise InvalidInput(f"the chat template refused the messages: {refusal}") from None
    except jinja2.exceptions.SecurityError as error:
        raise _blame(template_name)(f"{template_name} tried an unsafe operation: {error}") from None
    except (jinja2.TemplateError, TypeError, KeyError, IndexError, AttributeError) as error:
        raise InvalidInput(f"the chat template failed on these messages: {type(error).__name__}: {error}") from None


def _blame(template_name: str) -> type[InvalidModel] | type[InvalidInput]:
    return InvalidModel if template_name == "tokenizer.chat_template" else InvalidInput


def _check_messages(messages: Sequence[dict]) -> None:
    if isinstance(messages, (str, bytes)) or not isinstance(messages, Sequence):
        raise InvalidInput(f"messages must be a list of dicts, got {type(messages).__name__}")
    for i, message in enumerate(messages):
        if not isinstance(message, dict) or not isinstance(message.get("role"), str) \
                or not isinstance(message.get("content"), str):
            raise InvalidInput(f"messages[{i}] must be a dict with string 'role' and 'content', got {message!r:.80}")


def given_template(source: str, description: str = "the given chat template") -> ChatTemplate:
    """A template the caller supplies (`--chat-template FILE`, chat_template=TEXT)."""
    if not isinstance(source, str):
        raise InvalidInput(f"a chat template must be text, not {type(source).__name__}")
    return ChatTemplate(source, "given", description)


def chat_template_for(tokenizer, architecture: str | None = None) -> ChatTemplate:
    """The file's template, else the architecture's built-in one; otherwise UnsupportedModel
    saying how to pass one."""
    if tokenizer.chat_template:
        return ChatTemplate(tokenizer.chat_template, "file", "the file's chat template")
    built_in = ARCHITECTURE_TEMPLATES.get(architecture or "")
    if built_in is None:
        raise UnsupportedModel(f"the model file has no tokenizer.chat_template and architecture {architecture!r} has "
                               f"no single known chat format; {HOW_TO_PASS_A_TEMPLATE}")
    missing = [text for text in built_in.control_tokens if text not in tokenizer.token_to_id]
    if missing:
        raise UnsupportedModel(f"the model file has no tokenizer.chat_template and its vocabulary lacks {missing}, "
                               f"which the {architecture} chat format needs; {HOW_TO_PASS_A_TEMPLATE}")
    return ChatTemplate(built_in.source, "built-in",
                        f"the {architecture} architecture's known template (llama.cpp's built-in {built_in.name!r})")


def architecture_of(model_or_tokenizer) -> str | None:
    """A loaded model's architecture (None for a bare tokenizer)."""
    summary = getattr(model_or_tokenizer, "summary", None)
    return summary.get("architecture") if isinstance(summary, dict) else None


def render_chat_for(model_or_tokenizer, messages: Sequence[dict], *, add_generation_prompt: bool = True,
                    architecture: str | None = None, template: ChatTemplate | None = None) -> str:
    """The chat prompt for a loaded model (anything with .tokenizer) or a tokenizer, ready
    for `tokenizer.encode(prompt)`. When the tokenizer adds bos/eos itself, the template gets
    empty bos/eos strings so the prompt does not start with two of them (as llama.cpp does)."""
    tokenizer = getattr(model_or_tokenizer, "tokenizer", model_or_tokenizer)
    if template is None:
        template = chat_template_for(tokenizer, architecture or architecture_of(model_or_tokenizer))

    def token_text(token_id: int | None, added_by_encode: bool) -> str:
        return "" if token_id is None or added_by_encode else tokenizer.tokens[token_id]

    return render_chat(template.source, messages, add_generation_prompt=add_generation_prompt,
                       template_name="the given chat template" if template.origin == "given" else "tokenizer.chat_template",
                       bos_token=token_text(tokenizer.bos_id, tokenizer.add_bos),
                       eos_token=token_text(tokenizer.eos_id, False))
