"""serve-stdio survives any byte stream: every line gets exactly one answer, and the server reads on.

A line the server cannot read (invalid UTF-8, binary data, brackets nested
100,000 deep, an integer of more digits than Python converts, a line longer
than the limit) is answered by one ProtocolError with ``id: null``; a request
whose id the schema refuses is answered with ``id: null`` too. Each hostile
line is followed by a ``state`` request, which must still be answered.
"""

from __future__ import annotations

import io
import json
import random

import pytest
from server_harness import Answers

from ggufsm.conformance import protocol
from ggufsm.conformance.adapters.reference import make_adapter
from ggufsm.conformance.lines import LineProblem, parse_line, request_lines

LINE_LIMIT = 4096

HOSTILE_LINES = {
    "invalid UTF-8": b'{"id": 1, "op": "st\xffate"}',
    "a lone continuation byte": b"\x80",
    "an overlong encoding": b'{"id": 1, "op": "\xc0\xafstate"}',
    "nested 100,000 deep": b"[" * 100_000,
    "nested 100,000 deep, closed": b"[" * 100_000 + b"]" * 100_000,
    "an integer of 5,000 digits": b'{"id": ' + b"7" * 5000 + b', "op": "state"}',
    "a number of 5,000 digits in the args": b'{"id": 2, "op": "state", "args": {"n": ' + b"9" * 5000 + b"}}",
    "a line over the limit": b'{"id": 3, "op": "state", "args": {"pad": "' + b"x" * (3 * LINE_LIMIT) + b'"}}',
    "binary data": bytes(random.Random(12).randbytes(2000)).replace(b"\n", b"\x00"),
    "NUL bytes": b"\x00" * 64,
    "not an object": b"[1, 2, 3]",
    "an id the schema refuses, nested": b'{"id": ' + b"[" * 500 + b"]" * 500 + b', "op": "state"}',
    "no op": b'{"id": null}',
    "JSON's NaN": b'{"id": 4, "op": "state", "args": {"x": NaN}}',
    "a truncated object": b'{"id": 5, "op": ',
}


def serve_lines(lines: list[bytes]) -> list[dict]:
    answers = Answers()
    server = protocol.Server(make_adapter, io.BytesIO(b"".join(line + b"\n" for line in lines)), answers)  # type: ignore[arg-type]
    server.max_line_bytes = LINE_LIMIT
    server.serve()
    return answers.messages


@pytest.mark.parametrize("name", HOSTILE_LINES)
def test_a_hostile_line_gets_exactly_one_answer_and_the_server_reads_on(name):
    state_request = json.dumps({"id": "after", "op": "state"}).encode()
    answers = serve_lines([HOSTILE_LINES[name], state_request])
    assert len(answers) == 2, answers
    hostile, = [answer for answer in answers if answer["id"] != "after"]
    after, = [answer for answer in answers if answer["id"] == "after"]
    assert hostile["ok"] is False and hostile["error"]["code"] in ("ProtocolError", "InvalidInput")
    assert protocol.schema_problems(hostile) == []
    assert after["ok"] is True and after["value"] == "Uninitialized"


def test_unparsable_lines_are_answered_with_a_null_id():
    unparsable = ["invalid UTF-8", "nested 100,000 deep", "an integer of 5,000 digits", "a line over the limit",
                  "binary data", "a truncated object"]
    for answer in serve_lines([HOSTILE_LINES[name] for name in unparsable]):
        assert answer["id"] is None and answer["error"]["code"] == "ProtocolError", answer


def test_a_lone_surrogate_in_a_request_is_answered_in_valid_utf8():
    answers = serve_lines([b'{"id": "\\ud800", "op": "state"}', b'{"id": 9, "op": "generate", "args": '
                                                                 b'{"prompt": "a\\udfffb", "max_tokens": 1}}'])
    assert len(answers) == 2
    for answer in answers:
        json.dumps(answer).encode("utf-8")


def test_a_stream_of_random_bytes_gets_one_answer_per_line():
    rng = random.Random(7)
    lines = [bytes(rng.randbytes(rng.randrange(1, 300))).replace(b"\n", b" ") for _ in range(200)]
    lines = [line for line in lines if line.strip()]
    assert len(serve_lines(lines)) == len(lines)


def test_an_overlong_line_is_dropped_in_pieces_and_the_next_line_is_read():
    stream = io.BytesIO(b"y" * (10 * LINE_LIMIT) + b"\n" + b'{"id": 1, "op": "state"}\n')
    problem, line = list(request_lines(stream, LINE_LIMIT))
    assert isinstance(problem, LineProblem) and "longer than 4096 bytes" in problem.message
    assert parse_line(line) == {"id": 1, "op": "state"}


def test_a_last_line_without_a_newline_is_still_a_request():
    assert list(request_lines(io.BytesIO(b'{"id": 1}'), LINE_LIMIT)) == [b'{"id": 1}']
