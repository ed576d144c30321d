"""The error hierarchy, made from the table's `errors` section.

One class per error code, all under :class:`GgufsmError`. The classes are
created from the table when this module is imported, so the vocabulary is
never typed twice; ``error_class(code)`` is how other code (and the C++
binding layer) turns a code into its class.
"""

from __future__ import annotations

from pathlib import Path

import yaml

TABLE_PATH = Path(__file__).with_name("lifecycle.yaml")


class GgufsmError(Exception):
    """An operation failed with one of the table's named errors.

    ``code`` is the table's error name, ``message`` says what was wrong and
    where, and ``state_after`` is the handle's state once the error was
    recorded (None when raised outside a runtime, e.g. by the GGUF parser).
    """

    code: str = "GgufsmError"
    meaning: str = ""

    def __init__(self, message: str, *, state_after: str | None = None):
        super().__init__(message)
        self.message = message
        self.state_after = state_after

    def __str__(self) -> str:
        suffix = f" (state after: {self.state_after})" if self.state_after else ""
        return f"{self.code}: {self.message}{suffix}"

    def to_dict(self) -> dict:
        return {"code": self.code, "message": self.message, "state_after": self.state_after}


# Python base classes that let callers catch our errors the usual way too
# (e.g. ``except ValueError``). Which standard family an error belongs to is a
# Python concern, not something the language-neutral table says.
_PYTHON_FAMILY: dict[str, tuple[type, ...]] = {
    "InvalidSampling": (ValueError,),
    "InvalidInput": (ValueError,),
    "ContextOverflow": (ValueError,),
    "InvalidModel": (ValueError,),
    "UnsupportedModel": (ValueError,),
    "ModelUnavailable": (OSError,),
    "InvalidState": (RuntimeError,),
    "ModelNotLoaded": (RuntimeError,),
}


def _error_table() -> dict[str, dict]:
    with TABLE_PATH.open(encoding="utf-8") as table_file:
        return yaml.safe_load(table_file)["errors"]


def _make_classes() -> dict[str, type[GgufsmError]]:
    classes = {}
    for code, entry in _error_table().items():
        bases = (GgufsmError, *_PYTHON_FAMILY.get(code, ()))
        namespace = {"code": code, "meaning": entry["meaning"], "__doc__": entry["meaning"], "__module__": __name__}
        classes[code] = type(code, bases, namespace)
    return classes


ERROR_CLASSES: dict[str, type[GgufsmError]] = _make_classes()
globals().update(ERROR_CLASSES)
__all__ = ["GgufsmError", "ERROR_CLASSES", "error_class", *ERROR_CLASSES]


def error_class(code: str) -> type[GgufsmError]:
    """The exception class for a table error code."""
    try:
        return ERROR_CLASSES[code]
    except KeyError:
        raise KeyError(f"{code!r} is not an error code of the lifecycle table") from None


def __getattr__(name: str):
    # Lets type checkers and readers see that attributes come from the table.
    raise AttributeError(f"module {__name__!r} has no attribute {name!r} (not an error code in {TABLE_PATH.name})")
