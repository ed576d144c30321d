"""The JSON-lines protocol (version PROTOCOL_VERSION): messages, schema, and a server for Python adapters.

One JSON object per line. The runner writes requests ``{"id", "op", "args",
"handle"}`` to the implementation's stdin; the implementation answers each with
one response ``{"id", "ok", "value" | "error", "state"}`` on stdout, and
sends events before it: ``token`` events of a streaming generate (``"stream":
true``) and a ``paused`` event when an operation asked to pause has paused.
docs/protocol.md is the prose; ``protocol.schema.json`` (beside this file) is
the contract.

The server keeps one dispatcher per handle (the default one, and any opened
with ``open_handle``). A dispatcher answers queries and ``cancel`` in order on
its own lane thread, so they answer while a command of that handle runs, and
runs each command on a command worker of its own (never queued behind another
command), so two commands on one handle reach the runtime concurrently:
serializing them is the runtime's job, which is exactly what the suite checks. The reading thread only reads, dispatches and answers
the harness operations, so ``resume`` and other handles are never stuck behind
a runtime that blocks.
"""

from __future__ import annotations

import itertools
import json
import os
import queue
import threading
from collections.abc import Callable
from functools import cache, lru_cache
from pathlib import Path
from typing import IO, Any

from ggufsm.conformance.adapter import (
    BUSY,
    INTERNAL_ERROR,
    PAUSE,
    PAUSE_AFTER,
    PROTOCOL_ERROR,
    Adapter,
    ErrorInfo,
    Gate,
    Reply,
    process_memory,
)
from ggufsm.conformance.lines import MAX_LINE_BYTES, LineProblem, parse_line, request_lines
from ggufsm.spec.names import Operation

PROTOCOL_VERSION = "1.1"
SCHEMA_PATH = Path(__file__).with_name("protocol.schema.json")

# Operations of the harness, not of the table.
HELLO, FRESH, SHUTDOWN = "hello", "fresh", "shutdown"
OPEN_HANDLE, CLOSE_HANDLE, RESUME, MEMORY = "open_handle", "close_handle", "resume", "memory"
HARNESS_OPERATIONS = (HELLO, FRESH, SHUTDOWN, OPEN_HANDLE, CLOSE_HANDLE, RESUME, MEMORY)
TOKEN_EVENT, PAUSED_EVENT = "token", "paused"


@lru_cache(maxsize=1)
def schema() -> dict[str, Any]:
    return json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))


@cache
def _validator(definition: str | None) -> Any:
    import jsonschema

    root = schema()
    target = root if definition is None else {"$ref": f"#/$defs/{definition}", "$defs": root["$defs"]}
    return jsonschema.Draft202012Validator(target)


def schema_problems(message: Any, definition: str | None = None) -> list[str]:
    """Why a message breaks the schema (or one of its $defs, e.g. "hello_value"); [] when it conforms.
    A whole message is held to the definition its shape picks (event, request or response): the
    same verdict as the root's oneOf, at a third of the cost (every message of a run is checked)."""
    if definition is None and isinstance(message, dict):
        definition = "event" if "event" in message else "request" if "op" in message else "response"
    validator = _validator(definition)
    if validator.is_valid(message):
        return []
    return [f"{'/'.join(map(str, error.absolute_path)) or '<message>'}: {error.message}"
            for error in validator.iter_errors(message)]


# ─── messages ────────────────────────────────────────────────────────────────


RequestId = int | str | None


def request(request_id: RequestId, op: str, args: dict[str, Any] | None = None,
            handle: str | None = None) -> dict[str, Any]:
    message = {"id": request_id, "op": op, "args": dict(args or {})}
    if handle is not None:
        message["handle"] = handle
    return message


def response(request_id: RequestId, reply: Reply) -> dict[str, Any]:
    message: dict[str, Any] = {"id": request_id, "ok": reply.ok, "state": reply.state}
    if reply.value is not None or reply.ok:
        message["value"] = reply.value
    if reply.error is not None:
        message["error"] = reply.error.to_json()
    return message


def reply_of(message: dict[str, Any]) -> Reply:
    error = message.get("error")
    return Reply(
        ok=bool(message["ok"]),
        value=message.get("value"),
        error=ErrorInfo(error["code"], error.get("message", ""), error.get("state_after")) if error else None,
        state=message.get("state"),
    )


def token_event(request_id: RequestId, token: dict[str, Any]) -> dict[str, Any]:
    return {"id": request_id, "event": TOKEN_EVENT, "value": token}


def paused_event(request_id: RequestId) -> dict[str, Any]:
    return {"id": request_id, "event": PAUSED_EVENT}


def encode(message: dict[str, Any]) -> str:
    text = json.dumps(message, separators=(",", ":"), ensure_ascii=False, default=_json_default)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate a request carried (JSON allows "\ud800"): escaped, still JSON
        text = json.dumps(message, separators=(",", ":"), ensure_ascii=True, default=_json_default)
    return text + "\n"


def _json_default(value: Any) -> Any:
    # numpy scalars and other number-likes an adapter may hand back
    for convert in (int, float):
        try:
            return convert(value)
        except (TypeError, ValueError):
            continue
    return repr(value)


def hello_value(adapter: Adapter) -> dict:
    info = adapter.info
    return {
        "protocol": PROTOCOL_VERSION,
        "spec_version": info.spec_version,
        "implementation": {"name": info.name, "version": info.version},
        "capabilities": info.capabilities.to_json(),
        "pid": info.pid if info.pid is not None else os.getpid(),
    }


# ─── the server ──────────────────────────────────────────────────────────────

# Bounds on what a client can make the server hold: commands of one handle not yet answered (each
# waits on a command worker of its own), queries and controls queued in its lane (no thread each; bounded
# apart, so a cancel still gets through to a handle whose commands are at their bound), and handles
# open at once. Past any, the request is refused unrun with a Busy error. A client that waits for
# each answer uses one; the bounds only stop a flood (1,000 pipelined requests once started 482 threads).
MAX_PENDING_PER_HANDLE = 16
MAX_QUEUED_PER_LANE = 256
MAX_HANDLES = 16
# How often closing a handle cancels again while its commands finish: a command that was waiting for
# the handle's lock starts after the first cancel, and is cancelled by the next.
CLOSE_CANCEL_INTERVAL_S = 0.02


class CommandWorkers:
    """Long-lived threads that run the server's commands, one command per worker at a time.

    A command goes to the worker that became idle last, or to a new worker when none is idle, so
    no command ever waits for another to finish, and a client that waits for each answer has all
    its commands run on one thread. A worker is idle again before its command's answer is written:
    the client's next request finds it free. glibc gives each thread a malloc arena, the one it was
    handed when it first allocated; with a thread per command, each load landed on whichever arena
    its new thread drew, and what each arena kept after a free made the resident size after a free
    step up and down by about 280 KiB from one load/free cycle to the next on the tiny fixtures
    (measured with two busy loops beside it; the leak rule's median step once read 27-29 KiB a cycle
    that way, past its 16 KiB floor). On long-lived workers the same run steps by 0-12 KiB. The
    count of workers only grows to the most commands ever running at once (bounded by the admission
    limits)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._idle: list[_CommandWorker] = []   # most recently idle last
        self._workers: list[_CommandWorker] = []
        self._started = 0

    def run(self, job: Callable[[Callable[[], None]], None]) -> None:
        """Run job(release) on a worker; the job calls release() once it no longer needs the worker
        (before answering), and the worker is released when the job returns in any case."""
        with self._lock:
            worker = self._idle.pop() if self._idle else None
            if worker is None:
                worker = _CommandWorker(self, self._started)
                self._workers.append(worker)
                self._started += 1
        worker.give(job)

    def released(self, worker: _CommandWorker) -> None:
        with self._lock:
            self._idle.append(worker)

    @property
    def started(self) -> int:
        """Workers started so far (each one is a thread that lives until stop())."""
        with self._lock:
            return self._started

    def stop(self) -> None:
        """End every worker once its current command is done."""
        with self._lock:
            workers, self._workers, self._idle = self._workers, [], []
        for worker in workers:
            worker.give(None)


class _CommandWorker:
    def __init__(self, pool: CommandWorkers, number: int):
        self._pool = pool
        self._jobs: queue.SimpleQueue = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._serve, daemon=True, name=f"ggufsm-command-{number}")
        self._thread.start()

    def give(self, job: Callable[[Callable[[], None]], None] | None) -> None:
        self._jobs.put(job)

    def _serve(self) -> None:
        while (job := self._jobs.get()) is not None:
            released = False

            def release() -> None:
                nonlocal released
                if not released:
                    released = True
                    self._pool.released(self)
            try:
                job(release)
            finally:
                release()


class _Command:
    """A command a dispatcher handed to a worker: begun once its gate is registered and whether it runs
    is decided, done once it has been answered."""

    def __init__(self) -> None:
        self.begun = threading.Event()
        self.done = threading.Event()


class HandleDispatcher:
    """One runtime handle of the server: its adapter, the lane its queries and controls answer on (in
    order, never behind a running command), and its running commands (a command worker each)."""

    def __init__(self, adapter: Adapter, server: Server, key: str | None):
        self.adapter, self.server, self.key = adapter, server, key
        self._lane: queue.Queue = queue.Queue()
        self._running: set[_Command] = set()
        self._lock = threading.Lock()
        self._pending = {True: 0, False: 0}   # admitted and not yet answered: lane requests (True), commands
        self._closing = False      # set by close(): a command not started by then is not run
        self._lane_thread = threading.Thread(target=self._serve_lane, daemon=True, name=f"ggufsm-lane-{key or 'default'}")
        self._lane_thread.start()

    def admit(self, op: str) -> Reply | None:
        """None to run the request (counted pending until answered), or the Busy reply refusing it unrun."""
        with self._lock:
            inline = op in self.server.answered_inline
            bound = MAX_QUEUED_PER_LANE if inline else MAX_PENDING_PER_HANDLE
            if self._pending[inline] >= bound:
                kind = "queries and controls" if inline else "commands"
                return Reply(False, error=ErrorInfo(BUSY, f"{op} refused unrun: {self._pending[inline]} {kind} of this "
                                                          f"handle are pending (at most {bound}); "
                                                          "send it again once one has answered"))
            self._pending[inline] += 1
        return None

    def dispatch(self, request_id: RequestId, op: str, args: dict[str, Any], inline: bool) -> None:
        refused = self.admit(op)
        if refused is not None:
            self.server.write(response(request_id, refused))
            return
        if inline:
            self._lane.put((request_id, op, args))
            return
        command = _Command()
        with self._lock:
            self._running.add(command)
        self.server.workers.run(lambda release: self._run_command(command, request_id, op, args, release))
        # The reader reads on once the command has begun, as it did when a thread of its own started it: a
        # close, resume or cancel read after this request finds it begun (a worker picks a command up at once).
        command.begun.wait()

    def _run_command(self, command: _Command, request_id: RequestId, op: str, args: dict[str, Any],
                     release: Callable[[], None]) -> None:
        try:
            self._run(request_id, op, args, release, command.begun)
        finally:
            command.begun.set()
            with self._lock:
                self._running.discard(command)
            command.done.set()

    def _serve_lane(self) -> None:
        while (item := self._lane.get()) is not None:
            self._run(*item)

    def _run(self, request_id: RequestId, op: str, args: dict[str, Any],
             release: Callable[[], None] | None = None, begun: threading.Event | None = None) -> None:
        stream = bool(args.pop("stream", False))
        gate = self.server.gate_for(request_id, args)
        streamed = stream or (gate is not None and op == Operation.generate)
        on_token = (lambda token: self.server.write(token_event(request_id, token))) if streamed else None
        refused = self._closing and op not in self.server.answered_inline
        if begun is not None:
            begun.set()
        try:
            if refused:
                reply = Reply(False, error=ErrorInfo(BUSY, f"{op} refused unrun: the server is closing this handle"))
            else:
                reply = self.adapter.call(op, args, on_token=on_token, gate=gate)
        except Exception as error:  # noqa: BLE001  the adapter itself failed: answer, never leave the request hanging
            reply = Reply(False, error=ErrorInfo(INTERNAL_ERROR, f"{type(error).__name__}: {error}"))
        self.server.forget_gate(request_id)
        with self._lock:   # no longer pending before the answer: a client that waits for it may send the next at once
            self._pending[op in self.server.answered_inline] -= 1
        if release is not None:   # and its worker free for that next command
            release()
        self.server.write(response(request_id, reply))

    def state(self) -> str | None:
        return self.adapter.current_state() if self.adapter.capabilities.state else None

    def close(self) -> None:
        """Stop what runs (cancel, let every pause go) until no command is left, then drop the runtime.
        A command that has not started is answered Busy unrun; one that waited for the handle's lock
        starts after a cancel and is cancelled by the next, so nothing runs on once the client is gone."""
        self._closing = True
        can_cancel = Operation.cancel in self.adapter.capabilities.operations
        while running := self._alive():
            if can_cancel:
                self.adapter.call(Operation.cancel, {})
            self.server.resume_all()
            running[0].done.wait(CLOSE_CANCEL_INTERVAL_S)
        self._lane.put(None)   # the lane answers what it was given first
        self._lane_thread.join()
        self.adapter.close()

    def _alive(self) -> list[_Command]:
        with self._lock:
            return [command for command in self._running if not command.done.is_set()]

    def wait(self) -> None:
        with self._lock:
            running = list(self._running)
        for command in running:
            command.done.wait()


class Server:
    """Serves Python adapters over a pair of text streams: a default handle, and more on request."""

    def __init__(self, open_adapter: Callable[[], Adapter], instream: IO[bytes] | IO[str], outstream: IO[str]):
        from ggufsm.spec import load_spec

        operations = load_spec().operations
        self.answered_inline = {name for name, entry in operations.items() if entry.kind in ("query", "control")}
        self._open_adapter = open_adapter
        self._in, self._out = instream, outstream
        self.max_line_bytes = MAX_LINE_BYTES
        self._write_lock = threading.Lock()
        self._output_gone = False  # the client closed its end: answers have nowhere to go
        self._handles: dict[str | None, HandleDispatcher] = {}
        self._handle_names = (f"h{number}" for number in itertools.count(1))
        self._gates: dict[RequestId, Gate] = {}
        self._gates_lock = threading.Lock()
        self.workers = CommandWorkers()

    def serve(self) -> None:
        """Answer each line until `shutdown` or the end of the input (the client is gone), then cancel
        what runs, drop every handle and return. The input may be a byte or a text stream."""
        try:
            for line in request_lines(self._in, self.max_line_bytes):
                if not self._answer_line(line):
                    break
        finally:
            self.close_all()
            self.workers.stop()

    def close_all(self) -> None:
        for dispatcher in list(self._handles.values()):
            dispatcher.close()
        self._handles.clear()

    def _answer_line(self, line: bytes | str | LineProblem) -> bool:
        """Exactly one answer for the line, whatever it holds; False when the server should stop."""
        message = parse_line(line) if not isinstance(line, LineProblem) else line
        if isinstance(message, LineProblem):
            self.write(response(None, _protocol_error(message.message)))
            return True
        try:
            return self._handle_message(message)
        except Exception as error:  # noqa: BLE001  a bug of the server: the line is still answered, the server reads on
            self.write(response(_request_id(message), Reply(False, error=ErrorInfo(
                INTERNAL_ERROR, f"the server failed on this request: {type(error).__name__}: {error}"))))
            return True

    def _handle_message(self, message: Any) -> bool:
        """Handle one parsed request; False when the server should stop."""
        try:
            problems = schema_problems(message, "request")
        except RecursionError:
            problems = ["the request is nested deeper than the schema check recurses"]
        if problems:
            self.write(response(_request_id(message), _protocol_error("; ".join(problems))))
            return True
        request_id, op, args = message["id"], message["op"], dict(message.get("args") or {})
        key = message.get("handle")
        if op == SHUTDOWN:
            self.write(response(request_id, Reply(True)))
            return False
        if op in HARNESS_OPERATIONS:
            self.write(response(request_id, self._harness(op, args, key)))
            return True
        dispatcher = self._handles.get(key) if key is not None else self._default()
        if dispatcher is None:
            self.write(response(request_id, _protocol_error(f"no open handle {key!r}")))
            return True
        dispatcher.dispatch(request_id, op, args, inline=op in self.answered_inline)
        return True

    def _harness(self, op: str, args: dict[str, Any], key: str | None) -> Reply:
        if op == HELLO:
            return Reply(True, hello_value(self._default().adapter), state=self._default().state())
        if op == FRESH:
            self.close_all()
            return Reply(True, state=self._default().state())
        if op == OPEN_HANDLE:
            if len(self._handles) >= MAX_HANDLES:
                return Reply(False, error=ErrorInfo(BUSY, f"open_handle refused: {len(self._handles)} handles are "
                                                          f"open (at most {MAX_HANDLES}); close one first"))
            name = next(self._handle_names)
            self._handles[name] = HandleDispatcher(self._open_adapter(), self, name)
            return Reply(True, {"handle": name}, state=self._handles[name].state())
        if op == CLOSE_HANDLE:
            closing = args.get("handle")
            if not isinstance(closing, str) or closing not in self._handles:
                return _protocol_error(f"no open handle {closing!r}")
            dispatcher = self._handles.pop(closing)
            dispatcher.close()
            return Reply(True)
        if op == MEMORY:
            reading = process_memory(os.getpid(), trim=True)
            return Reply(True, reading.to_json() if reading is not None else None)
        assert op == RESUME
        with self._gates_lock:
            gate = self._gates.get(args.get("request"))
        if gate is None:
            return Reply(True, {"was_paused": False})
        gate.resume()
        return Reply(True, {"was_paused": True})

    def _default(self) -> HandleDispatcher:
        if None not in self._handles:
            self._handles[None] = HandleDispatcher(self._open_adapter(), self, None)
        return self._handles[None]

    def gate_for(self, request_id: RequestId, args: dict[str, Any]) -> Gate | None:
        """The gate a request asked for (pause_after, pause), taken out of its args."""
        after, pause = args.pop(PAUSE_AFTER, None), bool(args.pop(PAUSE, False))
        if not after and not pause:
            return None
        gate = Gate(int(after or 1), on_pause=lambda: self.write(paused_event(request_id)))
        with self._gates_lock:
            self._gates[request_id] = gate
        return gate

    def forget_gate(self, request_id: RequestId) -> None:
        with self._gates_lock:
            self._gates.pop(request_id, None)

    def resume_all(self) -> None:
        with self._gates_lock:
            gates = list(self._gates.values())
        for gate in gates:
            gate.resume()

    def write(self, message: dict) -> None:
        text = encode(message)
        with self._write_lock:
            if self._output_gone:
                return
            try:
                self._out.write(text)
                self._out.flush()
            except (BrokenPipeError, ValueError, OSError):  # the client closed its end: nobody reads answers now
                self._output_gone = True


def _protocol_error(message: str) -> Reply:
    return Reply(False, error=ErrorInfo(PROTOCOL_ERROR, message))


def _request_id(message: Any) -> RequestId:
    """The message's id if it is one the protocol allows (an integer or a string), else None: an answer
    never echoes a value the schema refused (a deeply nested one could not even be written back)."""
    request_id = message.get("id") if isinstance(message, dict) else None
    return request_id if isinstance(request_id, (int, str)) and not isinstance(request_id, bool) else None


def serve_stdio(open_adapter: Callable[[], Adapter]) -> int:
    """Serve on this process's stdin/stdout. Anything else that writes to stdout would corrupt the
    stream, so stdout is moved to stderr for the duration and the protocol keeps the original.
    stdin is read as bytes (each line decoded on its own, so a bad byte costs one line). SIGTERM ends
    the input as EOF does: the running command is cancelled, every handle dropped, and the process
    exits with status 0."""
    import signal
    import sys

    protocol_out = os.fdopen(os.dup(sys.stdout.fileno()), "w", encoding="utf-8", buffering=1)
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    sys.stdout = sys.stderr
    instream = open(sys.stdin.fileno(), "rb", closefd=False)
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, lambda signum, frame: end_input(sys.stdin.fileno()))
    Server(open_adapter, instream, protocol_out).serve()
    for stream in (protocol_out, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    # Every handle is freed and every answer written: leave now. The interpreter's own teardown (modules,
    # numpy, the core's caches) took 1 to 2 s on a loaded machine, after the client was already gone.
    os._exit(0)


def end_input(fd: int) -> None:
    """Make `fd` read as end of file from now on (a read blocked on it is retried after the signal
    handler that calls this, and finds EOF)."""
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, fd)
    os.close(devnull)
