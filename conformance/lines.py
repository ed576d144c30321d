"""Reading the protocol's request lines from any byte stream: each line becomes a request or one problem.

A protocol server reads whatever a client sends: invalid UTF-8, binary
data, brackets nested 100,000 deep, integers of more digits than Python
converts, lines of gigabytes. Each line here becomes either its parsed
message or a ``LineProblem`` the server answers with one ProtocolError
(``id: null``), and nothing a line holds can end the reading:

- a line longer than ``max_bytes`` is read on in pieces and dropped, so
  memory stays bounded by the limit, whatever the line's length;
- the bytes are decoded strictly (a text stream's lines are taken as they
  come; its decoder replaces what it cannot read);
- ``json.loads`` is given the whole line and every exception it raises on
  bad input is a problem: ``JSONDecodeError``, ``RecursionError`` (deep
  nesting), ``ValueError`` (an integer past ``sys.get_int_max_str_digits``).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO, Any

# A request line may hold a prompt of token ids for the largest context the table allows (2^20 ids,
# about 8 MiB as JSON): 16 MiB leaves room for that and bounds what one line can make the server hold.
MAX_LINE_BYTES = 16 * 1024 * 1024
_READ_PIECE = 1024 * 1024


@dataclass(frozen=True)
class LineProblem:
    """Why a line is not a request (answered with a ProtocolError whose id is null)."""

    message: str


def request_lines(stream: IO[bytes] | IO[str], max_bytes: int = MAX_LINE_BYTES) -> Iterator[bytes | str | LineProblem]:
    """The stream's non-blank lines, each at most max_bytes long (longer ones are a LineProblem); ends at EOF."""
    while True:
        line = stream.readline(max_bytes + 1)
        if not line:
            return
        if len(line) > max_bytes and not _ends_line(line):
            dropped = len(line) + _skip_rest_of_line(stream)
            yield LineProblem(f"the line is longer than {max_bytes} bytes ({dropped} bytes read and dropped)")
            continue
        if line.strip():
            yield line


def parse_line(line: bytes | str) -> Any | LineProblem:
    """The line's JSON value, or the LineProblem saying why it has none."""
    if isinstance(line, bytes):
        try:
            line = line.decode("utf-8")
        except UnicodeDecodeError as error:
            return LineProblem(f"the line is not UTF-8: byte 0x{line[error.start]:02x} at offset {error.start} "
                               f"({error.reason})")
    try:
        return json.loads(line)
    except json.JSONDecodeError as error:
        return LineProblem(f"not JSON: {error}")
    except RecursionError:
        return LineProblem("not JSON this server reads: nested deeper than Python's recursion limit")
    except ValueError as error:  # an integer literal of more digits than int() converts
        return LineProblem(f"not JSON this server reads: {error}")


def _ends_line(line: bytes | str) -> bool:
    return line.endswith(b"\n") if isinstance(line, bytes) else line.endswith("\n")


def _skip_rest_of_line(stream: IO[bytes] | IO[str]) -> int:
    """Read and drop up to the end of the current line (or EOF); the number of units dropped."""
    dropped = 0
    while True:
        piece = stream.readline(_READ_PIECE)
        dropped += len(piece)
        if not piece or _ends_line(piece):
            return dropped
