"""The reference Runtime: the public API of one handle.

Every command builds its command object (commands.py) and hands it to the
handle's lifecycle (lifecycle.py), where the table's machine decides what
happens; queries read the handle without waiting. Nothing here decides a
transition.
"""

from __future__ import annotations

import os
import queue
import threading
from collections.abc import Callable, Iterator, Sequence

from ggufsm.reference.model.loaded_model import LoadedModel
from ggufsm.reference.runtime.commands import (
    Free,
    Generate,
    GenerateNextToken,
    InitRuntime,
    InstallModel,
    Reset,
    SetSampling,
)
from ggufsm.reference.runtime.config import RuntimeConfig
from ggufsm.reference.runtime.diagnostics import snapshot
from ggufsm.reference.runtime.lifecycle import CommandEnd, Lifecycle
from ggufsm.reference.runtime.path_policy import ModelRoots
from ggufsm.reference.runtime.request import Generation, TokenEvent
from ggufsm.reference.sampling import SamplingConfig
from ggufsm.spec import load_spec
from ggufsm.spec.errors import Cancelled, GgufsmError
from ggufsm.spec.names import Operation, State

# Named once: on Python 3.11 reading a member off an Enum class goes through EnumType.__getattr__'s hook (~0.5 us
# hot), and this one is read every token.
_NEXT_TOKEN = Operation.generate_next_token


class Runtime:
    """A handle: its own state, model, KV cache, sampler and lock. Several can live in one process."""

    def __init__(self, *, model_roots: Sequence[str | os.PathLike] | None = None) -> None:
        """model_roots: load only model paths under these directories (path_policy.py); None: any path."""
        self._lifecycle = Lifecycle(load_spec())
        self._model_roots = ModelRoots(model_roots) if model_roots is not None else None

    # ─── queries (never wait) ──

    @property
    def state(self) -> State:
        return State(self._lifecycle.state)

    def last_command_end(self) -> CommandEnd | None:
        """How the calling thread's last command on this handle ended: its number on the handle and the
        state it left the handle in, read as it let the handle go (None before its first). `state` may
        already show a command that waited behind it; this is what that command itself left."""
        return self._lifecycle.last_command_end()

    @property
    def last_error(self) -> GgufsmError | None:
        return self._lifecycle.resident.last_error

    def diagnostics(self) -> dict:
        """A snapshot: state, resident data, model summary, context use, counters, timings, memory held."""
        lifecycle = self._lifecycle
        return snapshot(lifecycle.resident, lifecycle.state, lifecycle.spec.version)

    def cancel(self) -> bool:
        """Ask a running generate to stop after its current token. True when one was running."""
        return self._lifecycle.cancel_running()

    # ─── commands (serialized per handle) ──

    def init_runtime(self, config: RuntimeConfig | None = None, **settings) -> None:
        self._lifecycle.perform(Operation.init_runtime, InitRuntime(config, settings))

    def load_model(self, source) -> dict:
        """Install a model: a GGUF path, its bytes, or a registry name ("smollm2", "gemma3": its cached
        file, pulled with a progress bar when missing). Returns the model's summary."""
        return self._install(Operation.load_model, source)

    def replace_model(self, source) -> dict:
        return self._install(Operation.replace_model, source)

    def set_sampling(self, config: SamplingConfig | None = None, **parameters) -> None:
        self._lifecycle.perform(Operation.set_sampling, SetSampling(config, parameters))

    def generate(self, prompt: str | Sequence[int], max_tokens: int = 128, *, on_token: Callable[[TokenEvent], None] | None = None,
                 stop_at_eos: bool = True, **sampling_overrides) -> Generation:
        """Start a new request (clearing the previous one) and generate up to max_tokens tokens."""
        command = Generate(prompt, max_tokens, sampling_overrides, on_token, stop_at_eos)
        self._lifecycle.perform(Operation.generate, command)
        assert command.generation is not None
        return command.generation

    def generate_stream(self, prompt: str | Sequence[int], max_tokens: int = 128, **options) -> Iterator[TokenEvent]:
        """Yield tokens as they come. The generate runs on a worker thread, so every other call on this
        handle, even from inside the loop, is serialized behind it as the table says. Leaving the loop
        early cancels the request (its tokens so far are kept)."""
        events: queue.Queue = queue.Queue()
        done = object()

        def run():
            try:
                events.put(self.generate(prompt, max_tokens, on_token=events.put, **options))
            except BaseException as error:  # handed to the consumer, raised there
                events.put(error)
            finally:
                events.put(done)

        worker = threading.Thread(target=run, name="ggufsm-generate", daemon=True)
        worker.start()
        try:
            while (item := events.get()) is not done:
                if isinstance(item, TokenEvent):
                    yield item
                elif isinstance(item, BaseException) and not isinstance(item, Cancelled):
                    raise item
        finally:
            self.cancel()
            worker.join()

    def generate_next_token(self) -> TokenEvent:
        """Generate one more token of the open request."""
        command = GenerateNextToken()
        self._lifecycle.perform(_NEXT_TOKEN, command)
        assert command.event is not None
        return command.event

    def reset(self) -> None:
        self._lifecycle.perform(Operation.reset, Reset())

    def free(self) -> None:
        self._lifecycle.perform(Operation.free, Free())

    # ─── chat helper ──

    def chat(self, messages: list[dict], max_tokens: int = 256, *, chat_template: str | None = None,
             **options) -> Generation:
        """Apply a chat template to messages ({"role": ..., "content": ...}), then generate: the given
        Jinja template, else the file's, else its architecture's known one (UnsupportedModel if none)."""
        from ggufsm.reference.tokenizers.chat import given_template, render_chat_for

        model = self._model
        template = None if chat_template is None else given_template(chat_template)
        prompt = render_chat_for(model, messages, template=template) if model is not None else ""
        return self.generate(prompt, max_tokens, **options)

    # ─── internals ──

    @property
    def _model(self) -> LoadedModel | None:
        """The installed model (the CLI renders chat prompts with its template; benchmarks use its tokenizer)."""
        return self._lifecycle.resident.model

    def _install(self, operation: Operation, source) -> dict:
        command = InstallModel(source, self._model_roots)
        self._lifecycle.perform(operation, command)
        return command.summary
