"""A command run on a pseudo-terminal, as a person runs it: keys in, screen out.

Ctrl-C is the terminal's interrupt character, so the line discipline turns it
into SIGINT for the program's process group, exactly as on a real terminal.
The program starts with SIGINT and SIGQUIT at their default actions, as an
interactive shell starts a job: a test run in the background of a
non-interactive shell inherits them ignored (POSIX), and Python keeps an
ignored SIGINT ignored, so Ctrl-C would do nothing.
Tests wait for what the program prints (`expect`), never for an amount of
time; the deadline of `expect` is only a safety net against a hung program.
"""

from __future__ import annotations

import os
import pty
import re
import select
import signal
import sys

SAFETY_NET_SECONDS = 300
CTRL_C, CTRL_D = b"\x03", b"\x04"


class Terminal:
    def __init__(self, *args: str, env: dict[str, str] | None = None, cwd: str | None = None):
        pid, fd = pty.fork()
        if pid == 0:  # the child: the session leader with the pty as its controlling terminal
            if cwd:
                os.chdir(cwd)
            for number in (signal.SIGINT, signal.SIGQUIT):
                signal.signal(number, signal.SIG_DFL)
            os.execve(sys.executable, [sys.executable, "-m", "ggufsm", *args], env or dict(os.environ))
        self.pid, self.fd = pid, fd
        self.screen = b""        # everything printed so far
        self.seen = 0            # how much of it `expect` has consumed
        self.status: int | None = None

    def send(self, keys: bytes) -> None:
        os.write(self.fd, keys)

    def expect(self, pattern: bytes | str) -> re.Match:
        """Read until `pattern` (a regex) appears after what earlier calls consumed."""
        regex = re.compile(pattern.encode() if isinstance(pattern, str) else pattern)
        while (match := regex.search(self.screen, self.seen)) is None:
            if not self._read():
                raise AssertionError(f"the program ended without printing {regex.pattern!r}; screen:\n"
                                     + self.text[-3000:])
        self.seen = match.end()
        return match

    def wait(self) -> int:
        """Read to the end, then the exit status (128 + signal when killed, as a shell reports it)."""
        while self._read():
            pass
        _, status = os.waitpid(self.pid, 0)
        os.close(self.fd)
        self.status = os.waitstatus_to_exitcode(status)
        return self.status if self.status >= 0 else 128 - self.status

    @property
    def text(self) -> str:
        return self.screen.decode("utf-8", errors="replace")

    def _read(self) -> bool:
        ready, _, _ = select.select([self.fd], [], [], SAFETY_NET_SECONDS)
        if not ready:
            os.kill(self.pid, signal.SIGKILL)
            raise AssertionError(f"no output for {SAFETY_NET_SECONDS} s; screen:\n" + self.text[-3000:])
        try:
            chunk = os.read(self.fd, 65536)
        except OSError:  # EIO: the program closed the terminal (it ended)
            return False
        self.screen += chunk
        return bool(chunk)

    def close(self) -> None:
        if self.status is None:
            try:
                os.kill(self.pid, signal.SIGKILL)
                self.wait()
            except (ProcessLookupError, ChildProcessError, OSError):
                pass
