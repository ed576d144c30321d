# GENERATED from spec/lifecycle.yaml by `ggufsm spec generate`; do not edit.
# tests/spec/test_codegen.py fails when this file is stale.
"""The error hierarchy: GgufsmError and one subclass per error code of the table.

Every error carries ``code`` (an ``ErrorCode``), ``message`` (what was wrong and where) and
``state_after`` (the handle's state once the error was recorded, None outside a runtime).
"""

from __future__ import annotations

from ggufsm.spec.names import ErrorCode


class GgufsmError(Exception):
    """An operation failed with one of the table's named errors."""

    code: ErrorCode
    meaning: str = ""

    def __init__(self, message: str, *, state_after: str | None = None):
        super().__init__(message)
        self.message = message
        self.state_after = state_after

    def __str__(self) -> str:
        suffix = f" (state after: {self.state_after})" if self.state_after else ""
        return f"{self.code}: {self.message}{suffix}"

    def to_dict(self) -> dict:
        state_after = None if self.state_after is None else str(self.state_after)
        return {"code": str(self.code), "message": self.message, "state_after": state_after}


class ModelNotLoaded(GgufsmError, RuntimeError):
    """A generation or replace operation was called with no model installed."""

    code = ErrorCode.ModelNotLoaded
    meaning = 'A generation or replace operation was called with no model installed.'


class ModelUnavailable(GgufsmError, OSError):
    """The model path is missing, is a directory, or cannot be read; or the loaded model's file changed after it was loaded (truncated or rewritten in place)."""

    code = ErrorCode.ModelUnavailable
    meaning = "The model path is missing, is a directory, or cannot be read; or the loaded model's file changed after it was loaded (truncated or rewritten in place)."


class InvalidModel(GgufsmError, ValueError):
    """The model bytes are not a well-formed GGUF file (the message names the field or tensor and the byte offset); or, during a generate, the model's forward produced non-finite logits from finite weights (the message says how many and the first one's token id)."""

    code = ErrorCode.InvalidModel
    meaning = "The model bytes are not a well-formed GGUF file (the message names the field or tensor and the byte offset); or, during a generate, the model's forward produced non-finite logits from finite weights (the message says how many and the first one's token id)."


class UnsupportedModel(GgufsmError, ValueError):
    """The file is well-formed GGUF, but its architecture, tensor type or tokenizer is not one this runtime runs."""

    code = ErrorCode.UnsupportedModel
    meaning = 'The file is well-formed GGUF, but its architecture, tensor type or tokenizer is not one this runtime runs.'


class ContextOverflow(GgufsmError, ValueError):
    """The prompt, or the continuation, does not fit in the context window."""

    code = ErrorCode.ContextOverflow
    meaning = 'The prompt, or the continuation, does not fit in the context window.'


class InvalidSampling(GgufsmError, ValueError):
    """A sampling value is out of range (the message names the parameter, the value and the range)."""

    code = ErrorCode.InvalidSampling
    meaning = 'A sampling value is out of range (the message names the parameter, the value and the range).'


class InvalidInput(GgufsmError, ValueError):
    """An argument is malformed (wrong type, negative count, empty prompt, configuration out of range)."""

    code = ErrorCode.InvalidInput
    meaning = 'An argument is malformed (wrong type, negative count, empty prompt, configuration out of range).'


class InvalidState(GgufsmError, RuntimeError):
    """The operation is not allowed in the current state; nothing changed."""

    code = ErrorCode.InvalidState
    meaning = 'The operation is not allowed in the current state; nothing changed.'


class Cancelled(GgufsmError):
    """A running generate was cancelled; the tokens produced so far are kept."""

    code = ErrorCode.Cancelled
    meaning = 'A running generate was cancelled; the tokens produced so far are kept.'


ERROR_CLASSES: dict[str, type[GgufsmError]] = {cls.code.value: cls for cls in (
    ModelNotLoaded,
    ModelUnavailable,
    InvalidModel,
    UnsupportedModel,
    ContextOverflow,
    InvalidSampling,
    InvalidInput,
    InvalidState,
    Cancelled,
)}


def error_class(code: str) -> type[GgufsmError]:
    """The exception class for a table error code."""
    try:
        return ERROR_CLASSES[str(code)]
    except KeyError:
        raise KeyError(f"{code!r} is not an error code of the lifecycle table") from None


__all__ = [
    "GgufsmError",
    "ERROR_CLASSES",
    "error_class",
    "ModelNotLoaded",
    "ModelUnavailable",
    "InvalidModel",
    "UnsupportedModel",
    "ContextOverflow",
    "InvalidSampling",
    "InvalidInput",
    "InvalidState",
    "Cancelled",
]
