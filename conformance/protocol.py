"""The JSON-lines protocol (version PROTOCOL_VERSION): messages, schema, and a server for Python adapters.

One JSON object per line. The runner writes requests ``{"id", "op", "args"}``
to the implementation's stdin; the implementation answers each with one
response ``{"id", "ok", "value" | "error", "state"}`` on stdout, and a
streaming generate (``"stream": true`` in its args) first sends token events
``{"id", "event": "token", "value": {...}}``. docs/protocol.md is the prose;
``protocol.schema.json`` (beside this file) is the contract.

The server reads requests on one thread and runs each command on its own
thread, so queries and ``cancel`` are answered while a generate runs, and two
commands on one handle reach the runtime concurrently: serializing them is
the runtime's job, which is exactly what the suite checks.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable
from functools import cache, lru_cache
from pathlib import Path
from typing import IO, Any

from ggufsm.conformance.adapter import PROTOCOL_ERROR, Adapter, ErrorInfo, Reply

PROTOCOL_VERSION = "1.0"
SCHEMA_PATH = Path(__file__).with_name("protocol.schema.json")

# Operations of the harness, not of the table.
HELLO, FRESH, SHUTDOWN = "hello", "fresh", "shutdown"
HARNESS_OPERATIONS = (HELLO, FRESH, SHUTDOWN)


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
    """Why a message breaks the schema (or one of its $defs, e.g. "hello_value"); [] when it conforms."""
    return [f"{'/'.join(map(str, error.absolute_path)) or '<message>'}: {error.message}"
            for error in _validator(definition).iter_errors(message)]


# ─── messages ────────────────────────────────────────────────────────────────


RequestId = int | str | None


def request(request_id: RequestId, op: str, args: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"id": request_id, "op": op, "args": dict(args or {})}


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
    return {"id": request_id, "event": "token", "value": token}


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


class Server:
    """Serves one Python adapter at a time over a pair of text streams."""

    def __init__(self, open_adapter: Callable[[], Adapter], instream: IO[str], outstream: IO[str]):
        from ggufsm.spec import load_spec

        operations = load_spec().operations
        self._answered_inline = {name for name, entry in operations.items() if entry.kind in ("query", "control")}
        self._open_adapter = open_adapter
        self._in, self._out = instream, outstream
        self._write_lock = threading.Lock()
        self._adapter: Adapter | None = None
        self._running: set[threading.Thread] = set()
        self._running_lock = threading.Lock()

    def serve(self) -> None:
        try:
            for line in self._in:
                if line.strip() and not self._handle_line(line):
                    break
        finally:
            self._wait_for_commands()
            if self._adapter is not None:
                self._adapter.close()

    def _handle_line(self, line: str) -> bool:
        """Handle one request; False when the server should stop."""
        try:
            message = json.loads(line)
        except json.JSONDecodeError as error:
            self._write(response(None, _protocol_error(f"not JSON: {error}")))
            return True
        problems = schema_problems(message, "request")
        if problems:
            self._write(response(message.get("id") if isinstance(message, dict) else None,
                                 _protocol_error("; ".join(problems))))
            return True
        request_id, op, args = message["id"], message["op"], dict(message.get("args") or {})
        if op == SHUTDOWN:
            self._write(response(request_id, Reply(True)))
            return False
        if op == HELLO:
            self._write(response(request_id, Reply(True, hello_value(self.adapter), state=self._state())))
        elif op == FRESH:
            self._replace_adapter()
            self._write(response(request_id, Reply(True, state=self._state())))
        elif op in self._answered_inline:
            self._run(request_id, op, args)
        else:
            thread = threading.Thread(target=self._run, args=(request_id, op, args), name=f"ggufsm-{op}", daemon=True)
            with self._running_lock:
                self._running.add(thread)
            thread.start()
        return True

    @property
    def adapter(self) -> Adapter:
        if self._adapter is None:
            self._adapter = self._open_adapter()
        return self._adapter

    def _run(self, request_id: RequestId, op: str, args: dict[str, Any]) -> None:
        stream = bool(args.pop("stream", False))
        on_token = (lambda token: self._write(token_event(request_id, token))) if stream else None
        try:
            reply = self.adapter.call(op, args, on_token=on_token)
        except Exception as error:  # the adapter itself failed: answer, never leave the request hanging
            reply = Reply(False, error=ErrorInfo("InternalError", f"{type(error).__name__}: {error}"))
        self._write(response(request_id, reply))
        with self._running_lock:
            self._running.discard(threading.current_thread())

    def _replace_adapter(self) -> None:
        """A fresh runtime: stop what runs on the old one, wait for it, then drop it."""
        if self._adapter is not None:
            if "cancel" in self._adapter.capabilities.operations:
                self._adapter.call("cancel", {})
            self._wait_for_commands()
            self._adapter.close()
            self._adapter = None
        self._adapter = self._open_adapter()

    def _wait_for_commands(self) -> None:
        with self._running_lock:
            running = list(self._running)
        for thread in running:
            thread.join()

    def _state(self) -> str | None:
        adapter = self._adapter
        return adapter.current_state() if adapter is not None and adapter.capabilities.state else None

    def _write(self, message: dict) -> None:
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
