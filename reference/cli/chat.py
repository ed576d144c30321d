"""`ggufsm chat`: a conversation on the terminal, through the model's chat template.

Ctrl-C stops the reply being written and returns to the prompt (the part
already shown stays in the conversation); at the prompt it only clears the
line. `/reset` starts a new conversation; `/exit` or Ctrl-D leaves.
"""

from __future__ import annotations

import os
import select
import signal
import sys
from pathlib import Path

from ggufsm.reference.cli.options import (
    add_chat_template_option,
    add_ignore_eos_option,
    add_model_option,
    add_runtime_options,
    add_sampling_options,
    chat_template,
    open_runtime,
    report_unusual_finish,
)
from ggufsm.spec.errors import ContextOverflow, GgufsmError

EXIT, RESET = "/exit", "/reset"
PROMPT = "> "


def register(subparsers) -> None:
    parser = subparsers.add_parser("chat", help="chat with a model on the terminal")
    add_model_option(parser)
    parser.add_argument("-n", "--max-tokens", type=int, default=256, metavar="N", help="tokens per reply at most")
    parser.add_argument("--system", default=None, help="a system message opening the conversation (default: none)")
    add_chat_template_option(parser)
    add_ignore_eos_option(parser)
    add_runtime_options(parser)
    add_sampling_options(parser)
    parser.set_defaults(handler=run)


def run(args) -> int:
    runtime = open_runtime(args)
    template = chat_template(args, runtime)
    model = runtime._model
    assert model is not None, "open_runtime loads the model"
    print(f"ggufsm chat: {model.summary.get('name') or Path(model.source).stem} ({Path(model.source).name}), "
          f"{template.description}\n"
          f"  Ctrl-C stops a reply, {RESET} starts a new conversation, {EXIT} or Ctrl-D leaves.", flush=True)
    opening = [{"role": "system", "content": args.system}] if args.system else []
    with PromptLines() as lines:
        _converse(runtime, model, template, args, opening, lines)
    runtime.free()
    return 0


def _converse(runtime, model, template, args, opening: list[dict], lines: PromptLines) -> None:
    from ggufsm.reference.tokenizers.chat import render_chat_for

    messages = list(opening)
    while (line := _read_line(lines)) is not None:
        text = line.strip()
        if text == EXIT:
            break
        if text == RESET:
            messages = list(opening)
            runtime.reset()
            print("(new conversation)", flush=True)
            continue
        if not text:
            continue
        turn = [*messages, {"role": "user", "content": line}]
        try:
            prompt = render_chat_for(model, turn, template=template)
            reply = _stream_reply(runtime, prompt, args.max_tokens, stop_at_eos=not args.ignore_eos)
        except ContextOverflow as error:
            print(f"ggufsm: {error.message}; {RESET} starts a new conversation", file=sys.stderr, flush=True)
            continue
        except GgufsmError as error:
            print(f"ggufsm: {error}", file=sys.stderr, flush=True)
            continue
        messages = [*turn, {"role": "assistant", "content": reply.strip()}]


class PromptLines:
    """The lines typed at the prompt. Ctrl-C at the prompt raises KeyboardInterrupt, always.

    input() can miss it: a SIGINT that lands after the prompt is written but before
    the read starts sets Python's flag without interrupting the read, which then
    waits for a whole line. Here the signal also writes a byte to a pipe
    (signal.set_wakeup_fd) that the wait watches beside the terminal, so the wait
    ends either way and the interpreter raises KeyboardInterrupt as the loop turns.
    """

    def __init__(self, stream=None):
        self.stream = stream = stream or sys.stdin
        self.fd = stream.fileno() if stream.isatty() else None

    def __enter__(self) -> PromptLines:
        if self.fd is not None:
            self._wakeup_read, self._wakeup_write = os.pipe()
            for fd in (self._wakeup_read, self._wakeup_write):
                os.set_blocking(fd, False)
            self._previous = signal.set_wakeup_fd(self._wakeup_write)
        return self

    def __exit__(self, *exc) -> None:
        if self.fd is not None:
            signal.set_wakeup_fd(self._previous)
            os.close(self._wakeup_read)
            os.close(self._wakeup_write)

    def read(self, prompt: str) -> str | None:
        """The next line, or None at end of input (Ctrl-D)."""
        print(prompt, end="", flush=True)
        if self.fd is None:
            line = self.stream.readline()
            return line.removesuffix("\n") if line else None
        self._drain()   # signals that came while a reply was written are handled already
        while True:
            ready, _, _ = select.select([self.fd, self._wakeup_read], [], [])
            if self.fd in ready:
                # The terminal is in canonical mode: one read is one line (or b"" at Ctrl-D).
                data = os.read(self.fd, 1 << 16)
                return data.decode("utf-8", errors="replace").removesuffix("\n") if data else None
            self._drain()

    def _drain(self) -> None:
        try:
            while os.read(self._wakeup_read, 512):
                pass
        except BlockingIOError:
            pass


def _read_line(lines: PromptLines) -> str | None:
    """The next line typed, or None at end of input (Ctrl-D). Ctrl-C at the prompt clears the line."""
    while True:
        try:
            line = lines.read(PROMPT)
        except KeyboardInterrupt:
            print(f"\n(Ctrl-D or {EXIT} leaves)", flush=True)
            continue
        if line is None:
            print(flush=True)
        return line


def _stream_reply(runtime, prompt: str, max_tokens: int, *, stop_at_eos: bool) -> str:
    """The reply as shown: streamed until its end, or until Ctrl-C stops it."""
    parts: list[str] = []
    try:
        for event in runtime.generate_stream(prompt, max_tokens, stop_at_eos=stop_at_eos):
            parts.append(event.text)
            print(event.text, end="", flush=True)
    except KeyboardInterrupt:
        pass  # leaving the stream cancelled the request; the reply so far stays
    print(flush=True)
    report_unusual_finish(runtime)
    return "".join(parts)
