"""ggufsm: a formal lifecycle spec for local GGUF runtimes, its reference runtime and conformance kit.

The import package's rooms are ``ggufsm.spec`` (the table and what is derived
from it), ``ggufsm.reference`` (the runtime) and ``ggufsm.conformance`` (the
kit); the C++ core is ``ggufsm._core``.

    >>> import ggufsm
    >>> runtime = ggufsm.Runtime()
    >>> runtime.load_model("model.gguf")          # doctest: +SKIP
    >>> runtime.generate("Hello", 16).text        # doctest: +SKIP
"""

from importlib.metadata import PackageNotFoundError, version as _distribution_version

from ggufsm.spec.errors import GgufsmError  # noqa: F401  (public)

try:
    __version__ = _distribution_version("ggufsm")
except PackageNotFoundError:  # running from a source tree without an install
    __version__ = "0+unknown"

__all__ = ["GgufsmError", "Runtime", "RuntimeConfig", "SamplingConfig", "__version__"]


def __getattr__(name: str):
    # The runtime pulls in the C++ core and numpy; import it only when asked for.
    if name in ("Runtime", "RuntimeConfig"):
        from ggufsm.reference import runtime

        return getattr(runtime, name)
    if name == "SamplingConfig":
        from ggufsm.reference.sampling import SamplingConfig

        return SamplingConfig
    raise AttributeError(f"module 'ggufsm' has no attribute {name!r}")
