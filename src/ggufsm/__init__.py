"""ggufsm: a formal lifecycle spec for local GGUF runtimes, its reference runtime and conformance kit.

The import package's rooms are ``ggufsm.spec`` (the table and what is derived
from it), ``ggufsm.reference`` (the runtime) and ``ggufsm.conformance`` (the
kit); the C++ core is ``ggufsm._core``. The names below are the library's
face; README's "Use it from Python" shows them at work.

    >>> import ggufsm
    >>> runtime = ggufsm.Runtime()
    >>> runtime.load_model("smollm2")             # doctest: +SKIP
    >>> runtime.generate("Hello", 16).text        # doctest: +SKIP

Runtime            one handle: load_model, generate, generate_stream, generate_next_token, reset, free, ...
RuntimeConfig      context size and threads (init_runtime)
SamplingConfig     temperature, top-k, top-p, min-p, repetition penalty, seed (set_sampling)
Generation         what generate returns: prompt and generated token ids, text, finish reason
TokenEvent         one streamed token
State              the lifecycle table's states (Runtime.state is one)
GgufsmError        every named error; ggufsm.errors has one class per table code
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ggufsm.spec import errors
from ggufsm.spec.errors import GgufsmError
from ggufsm.spec.names import State

if TYPE_CHECKING:
    # Type checkers see the lazily imported names as the real classes.
    from ggufsm.reference.runtime import Generation, Runtime, RuntimeConfig, TokenEvent
    from ggufsm.reference.sampling import SamplingConfig

if TYPE_CHECKING:
    __version__: str

__all__ = ["Generation", "GgufsmError", "Runtime", "RuntimeConfig", "SamplingConfig", "State", "TokenEvent",
           "__version__", "errors"]

# The runtime pulls in the C++ core and numpy; `ggufsm --help` and the spec tools
# should not pay for them, so these are imported on first use.
_LAZY = {
    "Runtime": "ggufsm.reference.runtime",
    "RuntimeConfig": "ggufsm.reference.runtime",
    "Generation": "ggufsm.reference.runtime",
    "TokenEvent": "ggufsm.reference.runtime",
    "SamplingConfig": "ggufsm.reference.sampling",
}


def _version() -> str:
    # Asked for on first use: importlib.metadata (with the email package it reads metadata with) and the
    # search of sys.path for the distribution were 40-70 ms of every `import ggufsm`.
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("ggufsm")
    except PackageNotFoundError:  # running from a source tree without an install
        return "0+unknown"


def __getattr__(name: str):
    if name == "__version__":
        value = globals()["__version__"] = _version()
        return value
    if name in _LAZY:
        from importlib import import_module

        value = getattr(import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'ggufsm' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
