"""The command-line tests' models: tiny synthetic ones (no real model needed), with and without a chat template."""

from __future__ import annotations

from pathlib import Path

import pytest

from ggufsm.conformance.fixtures.tiny_models import write_tiny_llama


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    """A tiny llama with a byte-level BPE tokenizer and a ChatML template."""
    return write_tiny_llama(tmp_path_factory.mktemp("models") / "tiny-chat.gguf", seed=3)


@pytest.fixture(scope="session")
def tiny_base_model(tmp_path_factory) -> Path:
    """The same without a chat template, as a base model's file often is."""
    return write_tiny_llama(tmp_path_factory.mktemp("models") / "tiny-base.gguf", seed=3, chat_template=None)


@pytest.fixture
def terminal():
    """Start `ggufsm ARGS...` on a pseudo-terminal; every one started is killed at the end if still running."""
    from terminal import Terminal

    started: list[Terminal] = []

    def start(*args: str, **options) -> Terminal:
        started.append(Terminal(*args, **options))
        return started[-1]

    yield start
    for session in started:
        session.close()
