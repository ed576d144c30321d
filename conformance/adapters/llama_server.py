# ruff: noqa: E501  (the mapping table in the docstring is Markdown: one row a line)
"""llama.cpp's ``llama-server`` behind the adapter API, over its HTTP API
(``python:ggufsm.conformance.adapters.llama_server:make_adapter``).

The server binary is ``$GGUFSM_LLAMA_SERVER`` (default: ``llama-server`` on
PATH), built from the same vendored llama.cpp as the llama-cpp-python peer.
Each runtime handle is one server process, bound to 127.0.0.1 on a free port
the adapter picks, started and stopped by the adapter; it dies with the
process that started it (``PR_SET_PDEATHSIG``). The adapter adds nothing to
make a case pass: no lock, no validation, no state of its own beyond what an
HTTP client keeps (the server's address, the open request's tokens).

| operation | llama-server |
| --- | --- |
| init_runtime | records ``-c`` (n_ctx) and ``-t`` (n_threads) for the next start: the server's configuration is its command line, checked when it starts |
| load_model | start ``llama-server -m PATH --host 127.0.0.1 --port P -np 1 --slot-save-path DIR [-c N] [-t N]`` and poll ``GET /health`` (503 while it loads) until 200, or until the process exits: a failed load is the process's exit, classified from llama.cpp's own log line (below). The previous server is stopped after the new one answers (a client that switches servers) |
| generate | ``POST /completion`` with ``stream: true``, ``return_tokens: true``, ``cache_prompt: false``, ``n_predict`` = max_tokens, ``ignore_eos`` = not stop_at_eos, and the sampling fields under the server's names; token ids from each event's ``tokens``; ``truncated`` (the context filled) is finish ``context``, else ``stop_type`` ``eos`` is stop and ``limit`` is length. Without sampling settings, greedy (``temperature: 0``, the server's own greedy switch) |
| cancel | close the stream's connection (the server cancels a task whose client went away) |
| generate_next_token | ``POST /completion`` of the open request's tokens (the prompt via ``POST /tokenize``, then every generated token) with ``n_predict: 1`` and ``cache_prompt: true`` (the server reuses the slot's KV cache): HTTP has no "one more token" on an open request |
| reset | ``POST /slots/0?action=erase`` (the slot's KV cache and tokens) |
| free | stop the server (SIGTERM, then SIGKILL): a single-model server releases its model only by exiting; with no server running, nothing to do |
| set_sampling, replace_model, state, last_error, diagnostics | none: sampling is per request; a router server's ``/models/load`` spawns a second server process rather than replacing a model in place; ``/health`` and ``/slots`` say "ok" or "loading", not the lifecycle state: NotSupported |

Errors: an HTTP error's ``error.type`` is mapped — ``exceed_context_size_error``
is ContextOverflow, ``invalid_request_error`` InvalidInput, anything else an
unexpected failure with the server's message. A load whose process exits is
ModelUnavailable where llama.cpp's log says the file could not be opened,
UnsupportedModel where it names an unknown architecture, InvalidModel
otherwise. A server that dies on its own (an abort, a segfault) or stops
answering fails the call with its exit signal and the end of its log; a
call after the adapter stopped it (free) is ModelNotLoaded.
"""

from __future__ import annotations

import concurrent.futures
import ctypes
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from typing import Any

from ggufsm.conformance.adapter import INTERNAL_ERROR, NOT_SUPPORTED, PythonAdapter, TokenCallback, attach_partial_value
from ggufsm.spec.errors import (
    Cancelled,
    ContextOverflow,
    GgufsmError,
    InvalidInput,
    InvalidModel,
    ModelNotLoaded,
    ModelUnavailable,
    UnsupportedModel,
)
from ggufsm.spec.names import FinishReason

SERVER_ENV = "GGUFSM_LLAMA_SERVER"
START_TIMEOUT = 60.0      # seconds a server may take to load its model
CALL_TIMEOUT = 30.0       # seconds an HTTP call may wait for a byte (below the runner's own limit, so a
                          # silent server is this call's failure with the server's log, not a hung runner)
POLL_INTERVAL = 0.05      # between /health polls while the server loads (it has no "ready" event to wait on)
LOG_TAIL = 2000
_SAMPLING_NAMES = {"temperature": "temperature", "top_k": "top_k", "top_p": "top_p", "min_p": "min_p",
                   "repetition_penalty": "repeat_penalty", "repeat_last_n": "repeat_last_n", "seed": "seed"}
_FINISH = {"eos": FinishReason.stop, "word": FinishReason.stop, "limit": FinishReason.length}
_ERROR_TYPES = {"exceed_context_size_error": ContextOverflow, "invalid_request_error": InvalidInput}


class ServerFailed(GgufsmError):
    """The server died, stopped answering, or answered what the API does not document: a failed call."""

    code = INTERNAL_ERROR  # type: ignore[assignment]


class NoCounterpart(GgufsmError):
    code = NOT_SUPPORTED  # type: ignore[assignment]


def server_binary() -> str:
    found = os.environ.get(SERVER_ENV) or shutil.which("llama-server")
    if not found:
        raise FileNotFoundError(f"llama-server not found: set {SERVER_ENV} or put it on PATH")
    return found


def server_version(binary: str) -> str:
    """What ``llama-server --version`` says of itself (build number and commit)."""
    done = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=30, check=False)
    lines = [line for line in (done.stdout + done.stderr).splitlines() if line.startswith("version")]
    return lines[0].removeprefix("version: ").strip() if lines else "unknown"


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _die_with_parent() -> None:
    """In the child before exec: SIGTERM when the thread that started it ends (Linux prctl). Servers are
    started from the launcher's one thread, which lives as long as this process."""
    PR_SET_PDEATHSIG = 1
    ctypes.CDLL(None).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


# PR_SET_PDEATHSIG fires when the *thread* that forked the child ends, and operations run on short-lived
# threads: every server is started from this executor's one worker, which lives until the process ends.
_LAUNCHER = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="llama-server-launcher")


class Server:
    """One llama-server process and its log."""

    def __init__(self, binary: str, model: str, settings: dict[str, int]):
        self.port = _free_port()
        self.slot_dir = tempfile.mkdtemp(prefix="ggufsm-llama-server-")
        self.log = tempfile.TemporaryFile()   # noqa: SIM115  lives as long as the server; stop() closes it
        command = [binary, "-m", model, "--host", "127.0.0.1", "--port", str(self.port), "-np", "1",
                   "--slot-save-path", self.slot_dir, "--no-webui"]
        for flag, name in (("-c", "n_ctx"), ("-t", "n_threads")):
            if name in settings:
                command += [flag, str(settings[name])]
        self.command = command
        self.process = _LAUNCHER.submit(
            subprocess.Popen, command, stdin=subprocess.DEVNULL, stdout=self.log, stderr=subprocess.STDOUT,
            preexec_fn=_die_with_parent).result()  # noqa: PLW1509  only a prctl call, no Python locks

    def log_tail(self) -> str:
        if self.log.closed:
            return "(no log: the adapter stopped this server)"
        self.log.seek(0)
        return self.log.read().decode("utf-8", "replace")[-LOG_TAIL:]

    def died(self) -> str | None:
        """How the process ended, or None while it runs."""
        code = self.process.poll()
        if code is None:
            return None
        how = f"killed by signal {-code} ({signal.Signals(-code).name})" if code < 0 else f"exited with status {code}"
        return f"llama-server {how}; its log ends:\n{self.log_tail()}"

    def wait_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise _load_error(self.log_tail())
            try:
                status, _ = self.request("GET", "/health", timeout=5)
            except OSError:
                status = 0
            if status == 200:
                return
            try:  # the next poll, or at once if the server exits meanwhile
                self.process.wait(timeout=POLL_INTERVAL)
            except subprocess.TimeoutExpired:
                pass
        self.stop()
        raise ServerFailed(f"llama-server did not become healthy in {START_TIMEOUT:.0f} s; its log ends:\n{self.log_tail()}")

    def connection(self, timeout: float = CALL_TIMEOUT) -> http.client.HTTPConnection:
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)

    def request(self, method: str, path: str, body: dict | None = None, timeout: float = CALL_TIMEOUT) -> tuple[int, Any]:
        connection = self.connection(timeout)
        try:
            connection.request(method, path, body=None if body is None else json.dumps(body),
                               headers={"Content-Type": "application/json"})
            response = connection.getresponse()
            data = response.read()
        finally:
            connection.close()
        try:
            return response.status, json.loads(data) if data else None
        except json.JSONDecodeError:
            return response.status, data.decode("utf-8", "replace")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log.close()
        shutil.rmtree(self.slot_dir, ignore_errors=True)


def _load_error(log: str) -> GgufsmError:
    """A load's failure, named from llama.cpp's own log line."""
    lines = [line for line in log.splitlines() if "error" in line.lower() or "failed" in line.lower()]
    reason = "; ".join(lines[-3:]) or log[-300:]
    if "failed to open" in log or "No such file" in log:
        return ModelUnavailable(f"llama-server exited while loading: {reason}")
    if "unknown model architecture" in log or "unsupported" in log.lower():
        return UnsupportedModel(f"llama-server exited while loading: {reason}")
    return InvalidModel(f"llama-server exited while loading: {reason}")


class LlamaServerAdapter(PythonAdapter):
    name = "llama-server"

    def __init__(self) -> None:
        self._binary = server_binary()
        self.version = server_version(self._binary)
        self._settings: dict[str, int] = {}
        self._server: Server | None = None
        self._stopped = False             # the adapter stopped it (free): later calls find no model
        self._open_tokens: list[int] | None = None
        self._cancel = threading.Event()
        self._generating = threading.Event()
        self._stream: http.client.HTTPConnection | None = None
        super().__init__()

    def close(self) -> None:
        self._cancel.set()
        server, self._server = self._server, None
        if server is not None:
            server.stop()

    def op_init_runtime(self, n_ctx: int | None = None, n_threads: int = 0) -> None:
        self._settings = {name: value for name, value in (("n_ctx", n_ctx), ("n_threads", n_threads)) if value}

    def op_load_model(self, path: str) -> dict[str, Any]:
        server = Server(self._binary, os.fspath(path), self._settings)
        try:
            server.wait_ready()
        except BaseException:
            server.stop()
            raise
        previous, self._server, self._stopped, self._open_tokens = self._server, server, False, None
        if previous is not None:
            previous.stop()
        _, props = server.request("GET", "/props")
        n_ctx = props.get("default_generation_settings", {}).get("n_ctx") if isinstance(props, dict) else None
        return {"n_ctx": n_ctx}

    def op_generate(self, prompt: str | list[int], max_tokens: int = 16, stop_at_eos: bool = True,
                    sampling: dict[str, Any] | None = None, on_token: TokenCallback | None = None) -> dict[str, Any]:
        server = self._require_server()
        body: dict[str, Any] = {"prompt": prompt, "n_predict": max_tokens, "stream": True, "return_tokens": True,
                                "cache_prompt": False, "ignore_eos": not stop_at_eos, "temperature": 0.0}
        body |= {_SAMPLING_NAMES[name]: value for name, value in (sampling or {}).items() if name in _SAMPLING_NAMES}
        self._open_tokens = None
        self._cancel.clear()
        self._generating.set()
        tokens: list[int] = []
        pieces: list[str] = []
        finish = FinishReason.length
        try:
            for event in self._stream_events(server, body):
                for token in event.get("tokens") or []:
                    tokens.append(int(token))
                    if on_token is not None:
                        on_token({"token_id": int(token), "text": event.get("content", ""), "index": len(tokens) - 1})
                pieces.append(event.get("content", ""))
                if event.get("stop"):
                    # `truncated`: the server stopped because the context was full (its own word for it)
                    finish = FinishReason.context if event.get("truncated") else _FINISH.get(
                        event.get("stop_type", ""), FinishReason.length)
                if self._cancel.is_set():
                    finish = FinishReason.cancelled
                    break
        finally:
            self._close_stream()
            self._generating.clear()
        result = {"token_ids": tokens, "text": "".join(pieces), "finish_reason": finish}
        if finish == FinishReason.cancelled:
            raise attach_partial_value(Cancelled(f"the stream was closed after {len(tokens)} token(s)"), result)
        self._open_tokens = self._prompt_tokens(server, prompt) + tokens
        return result

    def op_generate_next_token(self) -> dict[str, Any]:
        server = self._require_server()
        if self._open_tokens is None:
            raise NoCounterpart("no open request: llama-server continues only a prompt it is sent")
        status, reply = self._call(server, "POST", "/completion", {
            "prompt": self._open_tokens, "n_predict": 1, "cache_prompt": True, "return_tokens": True,
            "temperature": 0.0})
        self._raise_for(status, reply)
        token = int(reply["tokens"][0])
        self._open_tokens.append(token)
        return {"token_id": token, "text": reply.get("content", "")}

    def op_reset(self) -> None:
        server = self._require_server()
        status, reply = self._call(server, "POST", "/slots/0?action=erase", {})
        self._raise_for(status, reply)
        self._open_tokens = None

    def op_free(self) -> None:
        # Stopping a server that is not running is nothing to do (as free(NULL) is in C).
        if self._server is not None and not self._stopped:
            self._server.stop()
        self._stopped, self._open_tokens = True, None

    def op_cancel(self) -> dict[str, bool]:
        running = self._generating.is_set()
        if running:
            self._cancel.set()
        return {"was_running": running}

    # ── HTTP ──

    def _require_server(self) -> Server:
        server = self._server
        if server is None or self._stopped:
            raise ModelNotLoaded("no llama-server is running: no model was loaded, or free stopped it")
        died = server.died()
        if died is not None:
            raise ServerFailed(died)
        return server

    def _call(self, server: Server, method: str, path: str, body: dict | None) -> tuple[int, Any]:
        try:
            return server.request(method, path, body)
        except (OSError, http.client.HTTPException) as error:
            raise ServerFailed(server.died() or f"llama-server stopped answering: {error}") from error

    def _raise_for(self, status: int, reply: Any) -> None:
        if status == 200:
            return
        error = reply.get("error", {}) if isinstance(reply, dict) else {}
        kind = _ERROR_TYPES.get(error.get("type", ""), ServerFailed)
        raise kind(f"HTTP {status} {error.get('type', '')}: {error.get('message', reply)}")

    def _stream_events(self, server: Server, body: dict) -> Iterator[dict[str, Any]]:
        """The server-sent events of one streaming completion, as JSON objects."""
        connection = server.connection()
        self._stream = connection
        try:
            connection.request("POST", "/completion", body=json.dumps(body), headers={"Content-Type": "application/json"})
            response = connection.getresponse()
            if response.status != 200:
                data = response.read()
                self._raise_for(response.status, json.loads(data) if data else None)
            for raw in response:
                line = raw.decode("utf-8", "replace").strip()
                if not line.startswith("data: "):
                    continue
                event = json.loads(line.removeprefix("data: "))
                if "error" in event:
                    self._raise_for(event["error"].get("code", 500), event)
                yield event
        except (OSError, http.client.HTTPException) as error:
            if self._cancel.is_set():
                return
            raise ServerFailed(server.died() or f"llama-server stopped answering: {error}") from error

    def _close_stream(self) -> None:
        stream, self._stream = self._stream, None
        if stream is not None:
            stream.close()

    def _prompt_tokens(self, server: Server, prompt: str | list[int]) -> list[int]:
        if isinstance(prompt, list):
            return [int(token) for token in prompt]
        status, reply = self._call(server, "POST", "/tokenize", {"content": prompt, "add_special": True})
        self._raise_for(status, reply)
        return [int(token) for token in reply["tokens"]]


def make_adapter() -> LlamaServerAdapter:
    return LlamaServerAdapter()


def provenance() -> dict[str, Any]:
    """The binary (path and sha256, observed), what it says of itself, and the source revision."""
    from pathlib import Path

    from ggufsm.conformance.adapters.llama_cpp_c import SOURCE_ENV
    from ggufsm.conformance.provenance import OBSERVED, REPORTED, fact, sha256_of, source_revision

    binary = server_binary()
    done = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=30, check=False)
    return {"binary": fact(binary, OBSERVED, f"${SERVER_ENV} or PATH"),
            "binary_sha256": fact(sha256_of(Path(binary)), OBSERVED, "hashed"),
            "server_version": fact((done.stdout + done.stderr).strip(), REPORTED, "llama-server --version"),
            **source_revision(os.environ.get(SOURCE_ENV))}
