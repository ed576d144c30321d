"""The adapter API: how the runner talks to an implementation under test.

An :class:`Implementation` is a source of fresh runtimes; each :class:`Adapter`
it opens is one fresh runtime handle (state Uninitialized). Every operation,
whether the implementation lives in this process or speaks the JSON-lines
protocol from a child process, goes through one call::

    reply = adapter.call("generate", {"prompt": "Hello", "max_tokens": 4}, on_token=print)

with the protocol's operation names and arguments (docs/protocol/protocol.md),
so a case is written once and runs against any implementation.

``--impl`` strings name implementations: ``python:MODULE:FACTORY`` is a
factory returning an Adapter (run in a child process by default, so a crash
is a failed case, not a dead runner); anything else is a command that speaks
the protocol on stdin/stdout.
"""

from __future__ import annotations

import importlib
import os
import shlex
import sys
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any

from ggufsm.spec.errors import GgufsmError
from ggufsm.spec.names import ErrorCode, Operation

# Error codes the protocol adds to the table's: an operation the implementation
# lacks, a request it could not parse, an unexpected failure inside it, and a
# request refused unrun because its handle has too many pending (a server may
# bound them; the client may send it again once an earlier request answered).
NOT_SUPPORTED = "NotSupported"
PROTOCOL_ERROR = "ProtocolError"
INTERNAL_ERROR = "InternalError"
BUSY = "Busy"

TokenCallback = Callable[[dict[str, Any]], None]
PARTIAL_VALUE = "partial_value"   # the attribute attach_partial_value sets on an error
# Arguments that ask an operation to pause (protocol 1.1): a generate after that many token events,
# a load or replace once it has started reading its model; a `resume` naming the request lets it go on.
PAUSE_AFTER, PAUSE = "pause_after", "pause"


@dataclass(frozen=True)
class ErrorInfo:
    code: str
    message: str
    state_after: str | None = None

    def to_json(self) -> dict:
        return {"code": self.code, "message": self.message, "state_after": self.state_after}


@dataclass(frozen=True)
class Reply:
    """The answer to one call: a value, or an error; and the state observed afterwards (None if unreported)."""

    ok: bool
    value: Any = None
    error: ErrorInfo | None = None
    state: str | None = None

    @property
    def code(self) -> str | None:
        return self.error.code if self.error else None

    @property
    def not_supported(self) -> bool:
        return self.code == NOT_SUPPORTED

    def describe(self) -> str:
        state = f" [state {self.state}]" if self.state is not None else ""
        if self.ok or self.error is None:
            return f"ok{state}"
        return f"{self.error.code}: {self.error.message}{state}"


@dataclass(frozen=True)
class Capabilities:
    state: bool                  # replies carry the lifecycle state
    diagnostics: bool            # the diagnostics query lists resident data
    operations: frozenset[str]   # the table operations it has
    handles: bool = False        # several runtimes at once in one process (open_handle; protocol 1.1)
    pause: bool = False          # honours pause_after / pause and resume (protocol 1.1)
    structured_diagnostics: bool = False   # diagnostics also give model identity, request counters, ... (1.1)
    memory: bool = False         # answers the `memory` harness operation (1.1)

    def to_json(self) -> dict:
        return {"state": self.state, "diagnostics": self.diagnostics, "operations": sorted(self.operations),
                "handles": self.handles, "pause": self.pause, "structured_diagnostics": self.structured_diagnostics,
                "memory": self.memory}

    @classmethod
    def from_json(cls, data: dict) -> Capabilities:
        return cls(bool(data["state"]), bool(data["diagnostics"]), frozenset(data["operations"]),
                   bool(data.get("handles", False)), bool(data.get("pause", False)),
                   bool(data.get("structured_diagnostics", False)), bool(data.get("memory", False)))


@dataclass(frozen=True)
class MemoryReading:
    """The resident set of the process holding a runtime; `trimmed`: taken after the allocator returned
    what it held free, so it counts what is in use (an untrimmed reading also counts freed memory an
    allocator keeps, which hides a small leak until that is used up)."""

    rss: int
    trimmed: bool

    def to_json(self) -> dict:
        return {"rss": self.rss, "trimmed": self.trimmed}


def process_memory(pid: int, *, trim: bool) -> MemoryReading | None:
    """VmRSS of `pid` (None where /proc cannot say); `trim`: this process first frees its unreachable
    objects (Python's cyclic collector) and its allocator then returns the memory it holds free (glibc's
    malloc_trim), so the reading counts what is in use. Without the collection, memory a free left in
    reference cycles counts until the collector next runs: llama-cpp-python's `Llama` and its sampler's
    closure hold each other, and its readings on the tiny fixtures climbed 450 KiB every few cycles until a
    full collection returned 6.5-7.7 MiB at cycle 53, so its verdict depended on where those runs fell."""
    trimmed = False
    if trim and pid == os.getpid():
        import ctypes
        import gc

        gc.collect()

        try:
            ctypes.CDLL(None).malloc_trim(0)
            trimmed = True
        except (OSError, AttributeError):   # not glibc: the reading counts what the allocator holds free
            trimmed = False
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    for line in status.splitlines():
        if line.startswith("VmRSS:"):
            return MemoryReading(int(line.split()[1]) * 1024, trimmed)
    return None


class Gate:
    """Holds one operation where the caller asked (a generate after its Nth token event, a load once it
    started reading), until `resume()`. The implementation's side calls `hold()` from the operation's
    own thread; the caller waits on `paused` (or on the operation's answer, if it never pauses)."""

    def __init__(self, after_tokens: int = 1, on_pause: Callable[[], None] | None = None):
        self.after_tokens = after_tokens
        self.paused = threading.Event()
        self._resumed = threading.Event()
        self._on_pause = on_pause
        self._resume_hook: Callable[[], None] | None = None

    def hold(self) -> None:
        """(implementation side) Pause here until resumed; a gate holds once."""
        if self.paused.is_set():
            return
        self.paused.set()
        if self._on_pause is not None:
            self._on_pause()
        self._resumed.wait()

    def mark_paused(self, resume_hook: Callable[[], None]) -> None:
        """(client side, out of process) The implementation reported the pause; `resume_hook` lets it go on."""
        self._resume_hook = resume_hook
        self.paused.set()
        if self._on_pause is not None:
            self._on_pause()

    def resume(self) -> None:
        if self._resumed.is_set():
            return
        self._resumed.set()
        hook, self._resume_hook = self._resume_hook, None
        if hook is not None:
            hook()

    @property
    def resumed(self) -> bool:
        return self._resumed.is_set()


def pause_args(op: str, gate: Gate) -> dict[str, Any]:
    """The protocol arguments that ask `op` to pause at `gate`."""
    return {PAUSE_AFTER: gate.after_tokens} if op == Operation.generate else {PAUSE: True}


def held_path(path: str, gate: Gate) -> Any:
    """`path` as a Path whose first use as a file system path holds at `gate`: a load given it pauses in
    its transient state, once it has started reading its model (any implementation that opens or
    stats the path through os.fspath)."""
    from pathlib import Path

    class HeldPath(type(Path())):  # type: ignore[misc]
        def __fspath__(self) -> str:
            gate.hold()
            return str(self)

    return HeldPath(path)


@dataclass(frozen=True)
class ImplementationInfo:
    name: str
    version: str
    capabilities: Capabilities
    spec_version: str | None = None
    pid: int | None = None      # the process holding the runtime (memory is measured there)


class ImplementationDied(RuntimeError):
    """The implementation's process ended while a call was outstanding."""

    def __init__(self, returncode: int | None, stderr_tail: str = ""):
        self.returncode = returncode
        self.signal = -returncode if returncode is not None and returncode < 0 else None
        self.stderr_tail = stderr_tail
        how = f"killed by signal {self.signal} ({_signal_name(self.signal)})" if self.signal else f"exited with status {returncode}"
        super().__init__(f"the implementation's process {how}" + (f"; stderr ends:\n{stderr_tail}" if stderr_tail else ""))


class ImplementationHung(RuntimeError):
    """A call got no answer within its time limit."""


class ImplementationUnusable(RuntimeError):
    """The implementation cannot be tested at all: it could not start, did not answer `hello`, or
    answered something that is not the protocol. Its message is the one-line diagnosis the
    command prints; no case can run, so the run stops (with a partial report if any case ran)."""


class Adapter(ABC):
    """One fresh runtime handle of an implementation."""

    info: ImplementationInfo
    # Seconds one call may take before the implementation counts as hung (the runner's --timeout);
    # None where the adapter enforces no limit (in-process).
    operation_timeout: float | None = None

    @abstractmethod
    def call(self, op: str, args: dict | None = None, on_token: TokenCallback | None = None,
             timeout: float | None = None, gate: Gate | None = None) -> Reply:
        """Apply a table operation; on_token receives each generated token ({token_id, text, index}).
        With a gate (and the pause capability), a generate pauses after gate.after_tokens token events
        and a load or replace once it started, until gate.resume()."""

    def close(self) -> None:  # noqa: B027  optional: an in-process runtime may hold nothing to release
        """Release the runtime (the implementation process, if any, stays up for the next adapter)."""

    def current_state(self) -> str | None:
        """The state now, for implementations that report one (None otherwise)."""
        return None

    def memory(self) -> MemoryReading | None:
        """The memory of the process that holds this runtime, where it can be measured."""
        return None

    @property
    def capabilities(self) -> Capabilities:
        return self.info.capabilities


class Implementation(ABC):
    """A source of fresh adapters for one implementation under test."""

    label: str

    @abstractmethod
    def open(self) -> Adapter:
        """A fresh runtime (Uninitialized); every handle opened before is dropped."""

    def open_handle(self) -> Adapter:
        """Another runtime in the same process, beside those open (capability `handles`)."""
        raise NotImplementedError(f"{self.label} has no handles")

    @property
    @abstractmethod
    def info(self) -> ImplementationInfo:
        ...

    def close(self) -> None:  # noqa: B027  optional: only a child process needs ending
        """End what the implementation started (a child process); nothing for an in-process one."""

    def __enter__(self) -> Implementation:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# ─── Python adapters ─────────────────────────────────────────────────────────


class PythonAdapter(Adapter):
    """Base for in-process adapters: `call` dispatches to `op_<name>(**args)` methods.

    A missing method is NotSupported; a GgufsmError becomes its code; any other
    exception is InternalError (a bug the case reports, never a pass). An
    error may carry a ``partial_value`` attribute (what a cancelled generate
    kept), sent as the reply's value. The state in each reply comes from
    `current_state()` when the implementation reports states.
    """

    name = "python-adapter"
    version = "0"
    # Each adapter object is one runtime: a second one in the same process is a second handle.
    handles = True
    # op_diagnostics answers the protocol 1.1 shape (model identity, request counters, last_error, ...).
    structured_diagnostics = False

    def __init__(self) -> None:
        from ggufsm.spec import load_spec

        operations = frozenset(op for op in load_spec().operations if callable(getattr(self, f"op_{op}", None)))
        diagnostics = callable(getattr(self, "op_diagnostics", None))
        # Pausing is done here, for every Python adapter: in its on_token callback, in its model path.
        self.info = ImplementationInfo(self.name, self.version, Capabilities(
            state=self.reports_state(), diagnostics=diagnostics, operations=operations, handles=self.handles,
            pause=True, structured_diagnostics=diagnostics and self.structured_diagnostics, memory=True),
            spec_version=self.spec_version(), pid=os.getpid())

    def memory(self) -> MemoryReading | None:
        return process_memory(os.getpid(), trim=True)

    def reports_state(self) -> bool:
        return type(self).current_state is not Adapter.current_state

    def spec_version(self) -> str | None:
        return None

    def reply_state(self) -> str | None:
        """The state a reply carries: the state the call left. By default the state read right after the
        call returns; an implementation whose queued commands can start in between says better."""
        return self.current_state()

    def _reported_state(self) -> str | None:
        return plain(self.reply_state()) if self.info.capabilities.state else None

    def call(self, op: str, args: dict[str, Any] | None = None, on_token: TokenCallback | None = None,
             timeout: float | None = None, gate: Gate | None = None) -> Reply:
        method = getattr(self, f"op_{op}", None)
        if op not in self.info.capabilities.operations or method is None:
            return Reply(False, error=ErrorInfo(NOT_SUPPORTED, f"{self.name} has no operation {op!r}"),
                         state=self._reported_state())
        kwargs = dict(args or {})
        kwargs.pop(PAUSE_AFTER, None), kwargs.pop(PAUSE, None)   # the gate says how to pause
        if gate is not None and "path" in kwargs and isinstance(kwargs["path"], str):
            kwargs["path"] = held_path(kwargs["path"], gate)
        if gate is not None and op == Operation.generate:
            on_token = _pausing(on_token, gate)
        if on_token is not None:
            kwargs["on_token"] = on_token
        try:
            value = method(**kwargs)
        except GgufsmError as error:
            return Reply(False, value=plain(getattr(error, PARTIAL_VALUE, None)),
                         error=ErrorInfo(plain(error.code), error.message, plain(error.state_after)),
                         state=self._reported_state())
        except TypeError as error:
            if _is_signature_error(error, method):
                return Reply(False, error=ErrorInfo(ErrorCode.InvalidInput, f"{op}: {error}"),
                             state=self._reported_state())
            return _internal_error(self, error)
        except Exception as error:  # a bug in the implementation: reported as such, never a pass
            return _internal_error(self, error)
        return Reply(True, value=plain(value), state=self._reported_state())


def plain(value: Any) -> Any:
    """`value` as the protocol carries it: the table's enums as their names, tuples as lists. An
    in-process reply then reads as serve-stdio's does (a message shows 'Ready', not <State.Ready: 'Ready'>)."""
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, dict):
        return {key: plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(item) for item in value]
    return value


def _pausing(on_token: TokenCallback | None, gate: Gate) -> TokenCallback:
    """on_token, then the gate's hold once gate.after_tokens events have gone out."""
    sent = [0]

    def forward(token: dict[str, Any]) -> None:
        if on_token is not None:
            on_token(token)
        sent[0] += 1
        if sent[0] == gate.after_tokens:
            gate.hold()
    return forward


def attach_partial_value(error: GgufsmError, value: Any) -> GgufsmError:
    """`error`, carrying what the operation produced before it failed (a cancelled generate's
    kept tokens): PythonAdapter sends it as the error reply's value."""
    setattr(error, PARTIAL_VALUE, value)
    return error


def _internal_error(adapter: PythonAdapter, error: BaseException) -> Reply:
    return Reply(False, error=ErrorInfo(INTERNAL_ERROR, f"{type(error).__name__}: {error}"), state=adapter._reported_state())


def _is_signature_error(error: TypeError, method: Callable[..., Any]) -> bool:
    """True when the TypeError is about the call's arguments, not raised inside the method."""
    traceback = error.__traceback__
    return traceback is not None and traceback.tb_next is None


class InProcessImplementation(Implementation):
    """A Python factory whose adapters run in this process (fast; a crash ends the runner too)."""

    def __init__(self, factory: Callable[[], Adapter], label: str):
        self._factory = factory
        self.label = label
        self._info: ImplementationInfo | None = None

    def open(self) -> Adapter:
        adapter = self._factory()
        self._info = adapter.info
        return adapter

    def open_handle(self) -> Adapter:
        return self.open()

    @property
    def info(self) -> ImplementationInfo:
        if self._info is None:
            probe = self._factory()
            self._info = probe.info
            probe.close()
        return self._info


def load_factory(impl: str) -> Callable[[], Adapter]:
    """The factory named by ``python:MODULE:FACTORY``."""
    prefix, _, rest = impl.partition(":")
    module_name, _, attribute = rest.partition(":")
    if prefix != "python" or not module_name or not attribute:
        raise ImplementationUnusable(f"{impl}: could not start: expected python:MODULE:FACTORY")
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        raise ImplementationUnusable(f"{impl}: could not start: {type(error).__name__}: {error}") from error
    try:
        return getattr(module, attribute)
    except AttributeError:
        raise ImplementationUnusable(f"{impl}: could not start: module {module_name} has no attribute "
                                     f"{attribute!r}") from None


def is_python_impl(impl: str) -> bool:
    return impl.startswith("python:")


def open_implementation(impl: str, *, isolate: bool = True, timeout: float = 60.0) -> Implementation:
    """The implementation an ``--impl`` string names.

    A Python factory runs in a child (``ggufsm conformance serve --impl ...``)
    unless isolate is False; a command is always a child speaking the protocol.
    """
    from ggufsm.conformance.adapters.stdio import SubprocessImplementation

    if is_python_impl(impl):
        _check_python_impl(impl)
        if not isolate:
            return InProcessImplementation(load_factory(impl), label=impl)
        command = [sys.executable, "-m", "ggufsm", "conformance", "serve", "--impl", impl]
        return SubprocessImplementation(command, label=impl, timeout=timeout)
    return SubprocessImplementation(shlex.split(impl), label=impl, timeout=timeout)


def _check_python_impl(impl: str) -> None:
    """A malformed python: string or a module that is not there is diagnosed here, before a child
    is started only to fail importing it."""
    import importlib.util

    _, _, rest = impl.partition(":")
    module_name, _, attribute = rest.partition(":")
    if not module_name or not attribute:
        raise ImplementationUnusable(f"{impl}: could not start: expected python:MODULE:FACTORY")
    try:
        found = importlib.util.find_spec(module_name)
    except (ImportError, ValueError) as error:
        found, why = None, f"{type(error).__name__}: {error}"
    else:
        why = f"no module named {module_name!r} on the Python path"
    if found is None:
        raise ImplementationUnusable(f"{impl}: could not start: {why}")


def _signal_name(number: int | None) -> str:
    import signal

    try:
        return signal.Signals(number).name if number is not None else "unknown"
    except ValueError:
        return "unknown"


@dataclass
class CallRecord:
    """One call a case made, kept for reports and reproductions."""

    op: str
    args: dict = field(default_factory=dict)
    reply: str = ""
    handle: str | None = None      # which runtime, when a case opens several


class RecordingAdapter(Adapter):
    """Wraps an adapter and keeps the calls made through it (in order), for failure reports."""

    def __init__(self, inner: Adapter, handle_label: str | None = None):
        self.inner = inner
        self.info = inner.info
        self.operation_timeout = inner.operation_timeout
        self.calls: list[CallRecord] = []
        self.handle_label = handle_label
        self._lock = threading.Lock()

    def call(self, op: str, args: dict[str, Any] | None = None, on_token: TokenCallback | None = None,
             timeout: float | None = None, gate: Gate | None = None) -> Reply:
        record = CallRecord(op, dict(args or {}), handle=self.handle_label)
        if gate is not None:
            record.args |= pause_args(op, gate)
        with self._lock:
            self.calls.append(record)
        reply = self.inner.call(op, args, on_token=on_token, timeout=timeout, gate=gate)
        record.reply = reply.describe()
        return reply

    def current_state(self) -> str | None:
        return self.inner.current_state()

    def memory(self) -> MemoryReading | None:
        return self.inner.memory()

    def close(self) -> None:
        self.inner.close()
