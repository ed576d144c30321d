"""The protocol client: an implementation in a child process, spoken to over JSON lines.

One child serves many fresh runtimes (the ``fresh`` request), so a suite of
hundreds of cases costs one process start. When the child dies (abort,
segfault) or stops answering, the outstanding call raises ImplementationDied
or ImplementationHung, and the next ``open()`` starts a new child: a crash is
one failed case, the run goes on.
"""

from __future__ import annotations

import collections
import itertools
import json
import os
import queue
import re
import signal
import subprocess
import threading
import time
from typing import Any

from ggufsm.conformance.adapter import (
    PROTOCOL_ERROR,
    Adapter,
    Capabilities,
    ErrorInfo,
    Gate,
    Implementation,
    ImplementationDied,
    ImplementationHung,
    ImplementationInfo,
    ImplementationUnusable,
    MemoryReading,
    Reply,
    TokenCallback,
    pause_args,
    process_memory,
)
from ggufsm.conformance.protocol import (
    CLOSE_HANDLE,
    FRESH,
    HELLO,
    MEMORY,
    OPEN_HANDLE,
    PAUSED_EVENT,
    PROTOCOL_VERSION,
    RESUME,
    SHUTDOWN,
    TOKEN_EVENT,
    encode,
    reply_of,
    schema_problems,
)
from ggufsm.spec.names import Operation

_DIED = object()
_STDERR_LINES_KEPT = 400
# How much of a hung child's stderr its diagnosis quotes (the end: where it was when it stopped answering).
HUNG_STDERR_LINES, HUNG_STDERR_LINE_CHARS = 20, 300
# How long to wait, after killing a hung child, for its stderr to reach the end (the pipe closes when the
# process group is gone; a grandchild outside it could hold it open, so the wait is bounded).
_STDERR_DRAIN_S = 5.0
_TELLING = re.compile(r"assert|error|abort|fault|exception|terminate", re.IGNORECASE)


class _Child:
    """One running implementation process and the thread that routes its answers by request id."""

    def __init__(self, command: list[str]):
        # Its own process group, so that killing it also ends what it started: llama.cpp's abort handler
        # forks a backtrace printer, and concurrent aborts leave those forks blocked forever.
        self.process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                        stderr=subprocess.PIPE, text=True, encoding="utf-8", bufsize=1,
                                        start_new_session=True)
        assert self.process.stdin and self.process.stdout and self.process.stderr   # all three are pipes
        self._stdin, self._stdout, self._stderr = self.process.stdin, self.process.stdout, self.process.stderr
        self.stderr_tail: collections.deque[str] = collections.deque(maxlen=_STDERR_LINES_KEPT)
        self.protocol_problems: list[str] = []
        self._pending: dict[object, queue.Queue] = {}
        self._pending_lock = threading.Lock()
        self._write_lock = threading.Lock()
        self._ids = itertools.count(1)
        self.dead = False
        self.last_line = ""   # what it printed last on stdout (a diagnosis quotes it)
        threading.Thread(target=self._route_stdout, daemon=True, name="ggufsm-child-stdout").start()
        self._stderr_reader = threading.Thread(target=self._drain_stderr, daemon=True, name="ggufsm-child-stderr")
        self._stderr_reader.start()

    def send(self, op: str, args: dict, handle: str | None = None) -> tuple[int, queue.Queue]:
        request_id = next(self._ids)
        answers: queue.Queue = queue.Queue()
        with self._pending_lock:
            if self.dead:
                answers.put(_DIED)
            self._pending[request_id] = answers
        message: dict[str, Any] = {"id": request_id, "op": op, "args": args}
        if handle is not None:
            message["handle"] = handle
        try:
            with self._write_lock:
                self._stdin.write(encode(message))
                self._stdin.flush()
        except (BrokenPipeError, OSError, ValueError):
            answers.put(_DIED)
        return request_id, answers

    def request(self, op: str, args: dict, on_token: TokenCallback | None, timeout: float,
                handle: str | None = None, gate: Gate | None = None) -> Reply:
        request_id, answers = self.send(op, args, handle)
        deadline = time.monotonic() + timeout
        try:
            while True:
                try:
                    message = answers.get(timeout=max(0.0, deadline - time.monotonic()))
                except queue.Empty:
                    raise ImplementationHung(f"no answer to {op} within {timeout:.0f} s") from None
                if message is _DIED:
                    raise ImplementationDied(self.wait(), self.stderr_summary())
                if message.get("event") == TOKEN_EVENT:
                    if on_token is not None:
                        on_token(message["value"])
                    continue
                if message.get("event") == PAUSED_EVENT:
                    if gate is not None:
                        gate.mark_paused(lambda: self._resume(request_id, timeout))
                    continue
                return reply_of(message)
        finally:
            with self._pending_lock:
                self._pending.pop(request_id, None)

    def _resume(self, request_id: int, timeout: float) -> None:
        """Let a paused request go on (its answer comes on the request's own queue, not here)."""
        self.request(RESUME, {"request": request_id}, None, timeout)

    def stderr_summary(self, telling: int = 6, last: int = 3) -> str:
        """The lines of stderr that say why it died (assertions, errors), then its last lines; a native
        abort can print a whole debugger backtrace, which would bury the reason."""
        lines = [line.rstrip() for line in self.stderr_tail]
        reasons = [line for line in lines if _TELLING.search(line) and not line.lstrip().startswith("#")][-telling:]
        tail = [line for line in lines[-last:] if line not in reasons]
        return "\n".join(reasons + (["..."] if reasons and tail else []) + tail)

    def stderr_end(self, lines: int = HUNG_STDERR_LINES) -> str:
        """The last `lines` lines of stderr, each cut to a bounded length; call it after kill() so that
        the lines written just before the child stopped answering are read (kill closes the pipe)."""
        self._stderr_reader.join(_STDERR_DRAIN_S)
        kept = [line.rstrip() for line in list(self.stderr_tail)[-lines:]]
        return "\n".join(line if len(line) <= HUNG_STDERR_LINE_CHARS else line[:HUNG_STDERR_LINE_CHARS] + " ..."
                         for line in kept)

    def wait(self, timeout: float = 5.0) -> int | None:
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def kill(self) -> None:
        """End the child and every process left in its group (also after the child itself died)."""
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        self.process.wait()

    def _route_stdout(self) -> None:
        for line in self._stdout:
            if not line.strip():
                continue
            self.last_line = line.strip()
            try:
                message = json.loads(line)
            except json.JSONDecodeError:
                self.protocol_problems.append(f"not JSON: {line[:200]!r}")
                continue
            problems = schema_problems(message)
            if problems:
                self.protocol_problems.append(f"{line[:200]!r}: {'; '.join(problems)}")
            with self._pending_lock:
                answers = self._pending.get(message.get("id")) if isinstance(message, dict) else None
            if answers is not None:
                answers.put(message)
        with self._pending_lock:
            self.dead = True
            for answers in self._pending.values():
                answers.put(_DIED)

    def _drain_stderr(self) -> None:
        for line in self._stderr:
            self.stderr_tail.append(line)


class SubprocessImplementation(Implementation):
    """An implementation spoken to over the protocol; restarted after it dies or hangs."""

    def __init__(self, command: list[str], *, label: str, timeout: float = 60.0):
        self.command = list(command)
        self.label = label
        self.timeout = timeout
        self._child: _Child | None = None
        self._info: ImplementationInfo | None = None
        self.restarts = 0

    @property
    def info(self) -> ImplementationInfo:
        if self._info is None:
            self._ensure_child()
        assert self._info is not None, "the child's hello gives the implementation's info"
        return self._info

    def open(self) -> Adapter:
        child = self._ensure_child()
        reply = self._request(child, FRESH, {}, None, self.timeout)
        if not reply.ok:
            raise ImplementationDied(None, f"fresh was refused: {reply.describe()}")
        return SubprocessAdapter(self, child)

    def open_handle(self) -> Adapter:
        """Another runtime in the same child, beside the open ones (dropped by the next `open`)."""
        child = self._ensure_child()
        reply = self._request(child, OPEN_HANDLE, {}, None, self.timeout)
        if not reply.ok or not isinstance(reply.value, dict) or "handle" not in reply.value:
            raise NotImplementedError(f"{self.label} opened no handle: {reply.describe()}")
        return SubprocessAdapter(self, child, handle=str(reply.value["handle"]))

    def pid(self) -> int | None:
        return self._child.process.pid if self._child is not None else None

    def close(self) -> None:
        child, self._child = self._child, None
        if child is None:
            return
        if not child.dead:
            try:
                child.request(SHUTDOWN, {}, None, timeout=10.0)
            except (ImplementationDied, ImplementationHung):
                pass
            child.wait(10.0)
        child.kill()   # whatever it left behind

    def _ensure_child(self) -> _Child:
        if self._child is not None and not self._child.dead and self._child.process.poll() is None:
            return self._child
        if self._child is not None:
            self._child.kill()
            self.restarts += 1
        self._child = self._start()
        return self._child

    def _start(self) -> _Child:
        """A child that answered `hello`, or ImplementationUnusable saying in one line why not."""
        try:
            child = _Child(self.command)
        except OSError as error:   # no such program, not executable, ...
            raise ImplementationUnusable(f"{self.label}: could not start: {error.strerror or error}") from error
        try:
            hello = self._request(child, HELLO, {}, None, self.timeout)
            if child.protocol_problems or not hello.ok:
                raise ValueError(child.protocol_problems[0] if child.protocol_problems else hello.describe())
        except ImplementationHung:
            raise ImplementationUnusable(self._not_answering(child, f"did not answer `hello` within {self.timeout:g} s")
                                         ) from None
        except ImplementationDied as died:
            child.kill()
            how = (str(died).split(";")[0].removeprefix("the implementation's process ") if died.returncode is not None
                   else "closed its output")
            reason = child.stderr_summary(telling=1, last=1).splitlines()
            raise ImplementationUnusable(f"{self.label}: could not start: it {how} before answering `hello`"
                                         + (f" ({reason[-1].strip()})" if reason else "")) from None
        except (KeyError, TypeError, ValueError, AttributeError):   # an answer that is not a reply
            raise ImplementationUnusable(self._not_answering(child, "answered something that is not the protocol",
                                                             repr(child.last_line))) from None
        try:
            self._info = _info_of(hello, self.label)
        except ImplementationDied as refused:   # a hello that is not the protocol's, or another major version
            child.kill()
            raise ImplementationUnusable(f"{self.label}: {refused.stderr_tail}") from None
        return child

    def _not_answering(self, child: _Child, what: str, detail: str = "") -> str:
        child.kill()
        problems = child.protocol_problems
        if problems and "not the protocol" not in what:
            what = "answered something that is not the protocol"
        detail = problems[0] if problems else detail
        return f"{self.label}: {what}" + (f": {detail[:160]}" if detail else "")

    def _request(self, child: _Child, op: str, args: dict[str, Any], on_token: TokenCallback | None,
                 timeout: float, handle: str | None = None, gate: Gate | None = None) -> Reply:
        try:
            return child.request(op, args, on_token, timeout, handle, gate)
        except ImplementationHung as hung:
            child.kill()  # a hung child cannot serve the next case
            tail = child.stderr_end()
            if not tail:
                raise
            raise ImplementationHung(f"{hung}; stderr ends:\n{tail}") from None


def _info_of(hello: Reply, label: str) -> ImplementationInfo:
    if not hello.ok:
        raise ImplementationDied(None, f"{label}: hello was refused: {hello.describe()}")
    problems = schema_problems(hello.value, "hello_value")
    if problems:
        raise ImplementationDied(None, f"{label}: malformed hello: {'; '.join(problems)}")
    if hello.value["protocol"].split(".")[0] != PROTOCOL_VERSION.split(".")[0]:
        raise ImplementationDied(None, f"{label} speaks protocol {hello.value['protocol']}, the runner {PROTOCOL_VERSION}")
    implementation = hello.value["implementation"]
    return ImplementationInfo(implementation["name"], implementation["version"],
                              Capabilities.from_json(hello.value["capabilities"]),
                              spec_version=hello.value.get("spec_version"), pid=hello.value.get("pid"))


class SubprocessAdapter(Adapter):
    """One runtime inside the implementation's child process: the default handle, or one it opened."""

    def __init__(self, implementation: SubprocessImplementation, child: _Child, handle: str | None = None):
        self._implementation = implementation
        self._child = child
        self.handle = handle
        self.info = implementation.info
        self.operation_timeout = implementation.timeout

    def call(self, op: str, args: dict[str, Any] | None = None, on_token: TokenCallback | None = None,
             timeout: float | None = None, gate: Gate | None = None) -> Reply:
        args = dict(args or {})
        if gate is not None and self.info.capabilities.pause:
            args |= pause_args(op, gate)
        else:
            gate = None
        if on_token is not None or (gate is not None and op == Operation.generate):
            args["stream"] = True
        reply = self._implementation._request(self._child, op, args, on_token, timeout or self._implementation.timeout,
                                              self.handle, gate)
        if self._child.protocol_problems:
            problems, self._child.protocol_problems[:] = list(self._child.protocol_problems), []
            return Reply(False, error=ErrorInfo(PROTOCOL_ERROR, "the implementation broke the protocol schema: "
                                                + " | ".join(problems)), state=reply.state)
        return reply

    def current_state(self) -> str | None:
        if not self.info.capabilities.state:
            return None
        return self.call(Operation.state).value

    def close(self) -> None:
        if self.handle is not None and not self._child.dead:
            try:
                self._implementation._request(self._child, CLOSE_HANDLE, {"handle": self.handle}, None,
                                              self._implementation.timeout)
            except (ImplementationDied, ImplementationHung):
                pass

    @property
    def pid(self) -> int | None:
        return self.info.pid or self._child.process.pid

    def memory(self) -> MemoryReading | None:
        """The implementation's own reading (trimmed) where it answers `memory`, else /proc's."""
        if self.info.capabilities.memory:
            reply = self._implementation._request(self._child, MEMORY, {}, None, self._implementation.timeout)
            if reply.ok and isinstance(reply.value, dict):
                return MemoryReading(int(reply.value["rss"]), bool(reply.value.get("trimmed")))
        return process_memory(self.pid, trim=False) if self.pid is not None else None
