"""The reference Runtime behind the adapter API (``python:ggufsm.conformance.adapters.reference:make_adapter``).

A thin translation: protocol arguments become Runtime arguments, results
become JSON values. Nothing here decides an outcome; the Runtime does.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Any

from ggufsm.conformance.adapter import Gate, PythonAdapter, Reply, TokenCallback, attach_partial_value, plain
from ggufsm.spec.errors import Cancelled
from ggufsm.spec.names import FinishReason


class ReferenceAdapter(PythonAdapter):
    name = "ggufsm-reference"
    structured_diagnostics = True   # Runtime.diagnostics() is the protocol's structured shape

    def __init__(self, model_roots: Sequence[str] | None = None) -> None:
        from ggufsm import __version__
        from ggufsm.reference.runtime import Runtime

        self.version = __version__
        self.runtime = Runtime(model_roots=model_roots)
        self._calling = threading.local()   # this thread's last command end before its current call
        super().__init__()

    def spec_version(self) -> str | None:
        from ggufsm.spec import load_spec

        return load_spec().version

    def current_state(self) -> str | None:
        return plain(self.runtime.state)

    def call(self, op: str, args: dict[str, Any] | None = None, on_token: TokenCallback | None = None,
             timeout: float | None = None, gate: Gate | None = None) -> Reply:
        self._calling.before = self.runtime.last_command_end()
        return super().call(op, args, on_token=on_token, timeout=timeout, gate=gate)

    def reply_state(self) -> str | None:
        # A command waiting behind this one may have started by now: the reply carries the state this
        # call's own command left (queries and cancel take no command: the state read now).
        end = self.runtime.last_command_end()
        if end is not None and end != getattr(self._calling, "before", None):
            return plain(end.state)
        return plain(self.runtime.state)

    def close(self) -> None:
        self.runtime.cancel()
        self.runtime.free()

    # ── commands ──

    def op_init_runtime(self, **settings: Any) -> None:
        self.runtime.init_runtime(**settings)

    def op_load_model(self, path: str) -> dict[str, Any]:
        return self.runtime.load_model(path)

    def op_replace_model(self, path: str) -> dict[str, Any]:
        return self.runtime.replace_model(path)

    def op_set_sampling(self, **parameters: Any) -> None:
        self.runtime.set_sampling(**parameters)

    def op_generate(self, prompt: str | list[int], max_tokens: int = 16, stop_at_eos: bool = True,
                    sampling: dict[str, Any] | None = None, on_token: TokenCallback | None = None) -> dict[str, Any]:
        produced: list[int] = []

        def forward(event: Any) -> None:
            produced.append(event.token_id)
            if on_token is not None:
                on_token({"token_id": event.token_id, "text": event.text, "index": event.index})

        try:
            generation = self.runtime.generate(prompt, max_tokens, on_token=forward, stop_at_eos=stop_at_eos,
                                               **(sampling or {}))
        except Cancelled as error:
            raise attach_partial_value(error, {"token_ids": produced, "text": "",
                                               "finish_reason": FinishReason.cancelled}) from None
        return {"token_ids": generation.token_ids, "text": generation.text,
                "finish_reason": generation.finish_reason, "prompt_tokens": len(generation.prompt_token_ids)}

    def op_generate_next_token(self) -> dict[str, Any]:
        event = self.runtime.generate_next_token()
        return {"token_id": event.token_id, "text": event.text, "index": event.index}

    def op_reset(self) -> None:
        self.runtime.reset()

    def op_free(self) -> None:
        self.runtime.free()

    # ── control and queries (answered without waiting) ──

    def op_cancel(self) -> dict[str, bool]:
        return {"was_running": self.runtime.cancel()}

    def op_state(self) -> str:
        return self.runtime.state

    def op_last_error(self) -> dict[str, str] | None:
        error = self.runtime.last_error
        return {"code": error.code, "message": error.message} if error is not None else None

    def op_diagnostics(self) -> dict[str, Any]:
        return self.runtime.diagnostics()


def make_adapter(model_roots: Sequence[str] | None = None) -> ReferenceAdapter:
    return ReferenceAdapter(model_roots)


def rooted_factory(model_roots: Sequence[str]) -> Callable[[], ReferenceAdapter]:
    """A factory of adapters that load only from under model_roots (resolved once, here); ValueError
    naming a root that is not a directory."""
    from ggufsm.reference.runtime.path_policy import ModelRoots

    roots = ModelRoots(model_roots).roots
    return lambda: ReferenceAdapter(roots)
