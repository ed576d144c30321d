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
runs each command on its own thread, so two commands on one handle reach the
runtime concurrently: serializing them is the runtime's job, which is exactly
what the suite checks. The reading thread only reads, dispatches and answers
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
    PAUSE,
    PAUSE_AFTER,
    PROTOCOL_ERROR,
    Adapter,
    ErrorInfo,
    Gate,
    Reply,
    process_memory,
)
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
    return json.dumps(message, separators=(",", ":"), ensure_ascii=False, default=_json_default) + "\n"


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


class HandleDispatcher:
    """One runtime handle of the server: its adapter, the lane its queries and controls answer on (in
    order, never behind a running command), and its running commands (one thread each)."""

    def __init__(self, adapter: Adapter, server: Server, key: str | None):
        self.adapter, self.server, self.key = adapter, server, key
        self._lane: queue.Queue = queue.Queue()
        self._running: set[threading.Thread] = set()
        self._lock = threading.Lock()
        self._lane_thread = threading.Thread(target=self._serve_lane, daemon=True, name=f"ggufsm-lane-{key or 'default'}")
        self._lane_thread.start()

    def admit(self, op: str) -> Reply | None:
        """None to run the request, or the reply refusing it unrun. The place for a bound on pending
        requests (an adapter.BUSY error reply); this server sets none."""
        return None

    def dispatch(self, request_id: RequestId, op: str, args: dict[str, Any], inline: bool) -> None:
        refused = self.admit(op)
        if refused is not None:
            self.server.write(response(request_id, refused))
            return
        if inline:
            self._lane.put((request_id, op, args))
            return
        thread = threading.Thread(target=self._run, args=(request_id, op, args), daemon=True, name=f"ggufsm-{op}")
        with self._lock:
            self._running.add(thread)
        thread.start()

    def _serve_lane(self) -> None:
        while (item := self._lane.get()) is not None:
            self._run(*item)

    def _run(self, request_id: RequestId, op: str, args: dict[str, Any]) -> None:
        stream = bool(args.pop("stream", False))
        gate = self.server.gate_for(request_id, args)
        streamed = stream or (gate is not None and op == Operation.generate)
        on_token = (lambda token: self.server.write(token_event(request_id, token))) if streamed else None
        try:
            reply = self.adapter.call(op, args, on_token=on_token, gate=gate)
        except Exception as error:  # noqa: BLE001  the adapter itself failed: answer, never leave the request hanging
            reply = Reply(False, error=ErrorInfo("InternalError", f"{type(error).__name__}: {error}"))
        self.server.forget_gate(request_id)
        self.server.write(response(request_id, reply))
        with self._lock:
            self._running.discard(threading.current_thread())

    def state(self) -> str | None:
        return self.adapter.current_state() if self.adapter.capabilities.state else None

    def close(self) -> None:
        """Stop what runs (cancel, let every pause go), wait for it, drop the runtime."""
        if Operation.cancel in self.adapter.capabilities.operations:
            self.adapter.call(Operation.cancel, {})
        self.server.resume_all()
        self.wait()
        self._lane.put(None)   # the lane answers what it was given first
        self._lane_thread.join()
        self.adapter.close()

    def wait(self) -> None:
        with self._lock:
            running = list(self._running)
        for thread in running:
            thread.join()


class Server:
    """Serves Python adapters over a pair of text streams: a default handle, and more on request."""

    def __init__(self, open_adapter: Callable[[], Adapter], instream: IO[str], outstream: IO[str]):
        from ggufsm.spec import load_spec

        operations = load_spec().operations
        self._answered_inline = {name for name, entry in operations.items() if entry.kind in ("query", "control")}
        self._open_adapter = open_adapter
        self._in, self._out = instream, outstream
        self._write_lock = threading.Lock()
        self._handles: dict[str | None, HandleDispatcher] = {}
        self._handle_names = (f"h{number}" for number in itertools.count(1))
        self._gates: dict[RequestId, Gate] = {}
        self._gates_lock = threading.Lock()

    def serve(self) -> None:
        try:
            for line in self._in:
                if line.strip() and not self._handle_line(line):
                    break
        finally:
            for dispatcher in list(self._handles.values()):
                dispatcher.close()

    def _handle_line(self, line: str) -> bool:
        """Handle one request; False when the server should stop."""
        try:
            message = json.loads(line)
        except json.JSONDecodeError as error:
            self.write(response(None, _protocol_error(f"not JSON: {error}")))
            return True
        problems = schema_problems(message, "request")
        if problems:
            self.write(response(message.get("id") if isinstance(message, dict) else None,
                                _protocol_error("; ".join(problems))))
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
        dispatcher.dispatch(request_id, op, args, inline=op in self._answered_inline)
        return True

    def _harness(self, op: str, args: dict[str, Any], key: str | None) -> Reply:
        if op == HELLO:
            return Reply(True, hello_value(self._default().adapter), state=self._default().state())
        if op == FRESH:
            for dispatcher in list(self._handles.values()):
                dispatcher.close()
            self._handles.clear()
            return Reply(True, state=self._default().state())
        if op == OPEN_HANDLE:
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
        with self._write_lock:
            self._out.write(encode(message))
            self._out.flush()


def _protocol_error(message: str) -> Reply:
    return Reply(False, error=ErrorInfo(PROTOCOL_ERROR, message))


def serve_stdio(open_adapter: Callable[[], Adapter]) -> int:
    """Serve on this process's stdin/stdout. Anything else that writes to stdout would corrupt the
    stream, so stdout is moved to stderr for the duration and the protocol keeps the original."""
    import sys

    protocol_out = os.fdopen(os.dup(sys.stdout.fileno()), "w", encoding="utf-8", buffering=1)
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    sys.stdout = sys.stderr
    instream = open(sys.stdin.fileno(), encoding="utf-8", closefd=False)
    Server(open_adapter, instream, protocol_out).serve()
    protocol_out.flush()
    return 0
