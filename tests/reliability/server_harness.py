"""A protocol server run in this process on a pipe, and a collector of what it writes, for the server tests.

Tests synchronize on the server's own answers and events (``Answers.wait_for``);
the timeouts given are hang guards only, never what a test measures.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable
from typing import Any

from ggufsm.conformance import protocol
from ggufsm.conformance.adapter import Adapter

HANG_GUARD_S = 120.0


class Answers:
    """A text stream the server writes to: every line kept, parsed, and waited on."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self._changed = threading.Condition()

    def write(self, text: str) -> int:
        with self._changed:
            self.lines.extend(line for line in text.splitlines() if line)
            self._changed.notify_all()
        return len(text)

    def flush(self) -> None:
        pass

    @property
    def messages(self) -> list[dict[str, Any]]:
        with self._changed:
            return [json.loads(line) for line in self.lines]

    def wait_for(self, predicate: Callable[[list[dict[str, Any]]], bool], what: str) -> list[dict[str, Any]]:
        with self._changed:
            if not self._changed.wait_for(lambda: predicate([json.loads(line) for line in self.lines]), HANG_GUARD_S):
                raise AssertionError(f"the server never sent {what}; it sent {self.lines[-5:]}")
        return self.messages

    def answer(self, request_id: Any) -> dict[str, Any]:
        def is_answer(message: dict[str, Any]) -> bool:
            return message.get("id") == request_id and "ok" in message

        seen = self.wait_for(lambda messages: any(map(is_answer, messages)), f"the answer to {request_id!r}")
        return next(filter(is_answer, seen))


class PipedServer:
    """serve() on a thread, reading the read end of an OS pipe the test writes requests to."""

    def __init__(self, open_adapter: Callable[[], Adapter], max_line_bytes: int | None = None):
        read_fd, self._write_fd = os.pipe()
        self._in = os.fdopen(read_fd, "rb")
        self.answers = Answers()
        self.server = protocol.Server(open_adapter, self._in, self.answers)  # type: ignore[arg-type]
        if max_line_bytes is not None:
            self.server.max_line_bytes = max_line_bytes
        self.thread = threading.Thread(target=self.server.serve, daemon=True, name="piped-server")
        self.thread.start()

    def send(self, *messages: dict[str, Any]) -> None:
        self.send_bytes(b"".join(protocol.encode(message).encode("utf-8") for message in messages))

    def send_bytes(self, data: bytes) -> None:
        os.write(self._write_fd, data)

    def end_input(self) -> None:
        """EOF, as a client that went away: the server must stop and return on its own."""
        os.close(self._write_fd)
        self.thread.join(HANG_GUARD_S)
        assert not self.thread.is_alive(), "the server did not return after the end of its input"
        self._in.close()
