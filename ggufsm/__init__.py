"""ggufsm: a formal lifecycle spec for local GGUF runtimes, its reference runtime and conformance kit.

The import package's rooms are ``ggufsm.spec`` (the table and what is derived
from it), ``ggufsm.reference`` (the runtime) and ``ggufsm.conformance`` (the
kit); the C++ core is ``ggufsm._core``.
"""

from importlib.metadata import PackageNotFoundError, version as _distribution_version

from ggufsm.spec.errors import GgufsmError  # noqa: F401  (public)

try:
    __version__ = _distribution_version("ggufsm")
except PackageNotFoundError:  # running from a source tree without an install
    __version__ = "0+unknown"
