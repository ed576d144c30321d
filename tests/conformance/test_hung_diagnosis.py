"""A child that stops answering is diagnosed with the end of its stderr (bounded: the last lines, each
cut short), so a maintainer sees where it was; the wait is the runner's own protocol timeout, reached
because the child never answers, not a sleep of the test's."""

from __future__ import annotations

import sys
import textwrap

import pytest

from ggufsm.conformance.adapter import ImplementationHung
from ggufsm.conformance.adapters.stdio import HUNG_STDERR_LINE_CHARS, HUNG_STDERR_LINES, SubprocessImplementation
from ggufsm.spec.names import Operation

# It answers hello and fresh; before answering fresh it writes `lines` lines to stderr (so they are in
# the pipe before the runner sends anything else), then it never answers init_runtime.
SCRIPT = textwrap.dedent("""
    import json, os, sys, threading
    from ggufsm.conformance.adapter import Capabilities
    from ggufsm.conformance.protocol import PROTOCOL_VERSION, encode

    lines = int(sys.argv[1])
    for line in sys.stdin:
        message = json.loads(line)
        if message["op"] == "hello":
            value = {"protocol": PROTOCOL_VERSION, "spec_version": None, "pid": os.getpid(),
                     "implementation": {"name": "hangs", "version": "0"},
                     "capabilities": Capabilities(False, False, frozenset({"init_runtime"})).to_json()}
            sys.stdout.write(encode({"id": message["id"], "ok": True, "state": None, "value": value}))
        elif message["op"] == "fresh":
            for number in range(lines):
                sys.stderr.write(f"loading step {number}\\n")
            if lines:
                sys.stderr.write("waiting for a lock held by " + "x" * 1000 + "\\n")
            sys.stderr.flush()
            sys.stdout.write(encode({"id": message["id"], "ok": True, "state": None, "value": None}))
        else:
            sys.stdout.flush()
            threading.Event().wait()   # never answers
        sys.stdout.flush()
""")


@pytest.fixture
def hanging(tmp_path):
    script = tmp_path / "hangs.py"
    script.write_text(SCRIPT)
    started = []

    def start(stderr_lines: int) -> SubprocessImplementation:
        # 2 s only bounds the wait for an answer that never comes, however fast or busy the machine.
        implementation = SubprocessImplementation([sys.executable, str(script), str(stderr_lines)], label="hangs",
                                                  timeout=2.0)
        started.append(implementation)
        return implementation

    yield start
    for implementation in started:
        implementation.close()


def test_a_hung_child_is_diagnosed_with_the_last_lines_of_its_stderr_each_bounded(hanging):
    adapter = hanging(stderr_lines=40).open()
    with pytest.raises(ImplementationHung) as hung:
        adapter.call(Operation.init_runtime, {})
    message = str(hung.value)
    head, _, tail = message.partition("; stderr ends:\n")
    assert head == "no answer to init_runtime within 2 s"
    quoted = tail.splitlines()
    assert len(quoted) == HUNG_STDERR_LINES
    assert quoted[:-1] == [f"loading step {number}" for number in range(40 - HUNG_STDERR_LINES + 1, 40)]
    assert quoted[-1] == ("waiting for a lock held by " + "x" * 1000)[:HUNG_STDERR_LINE_CHARS] + " ..."


def test_a_hung_child_that_wrote_nothing_to_stderr_keeps_the_plain_diagnosis(hanging):
    adapter = hanging(stderr_lines=0).open()
    with pytest.raises(ImplementationHung) as hung:
        adapter.call(Operation.init_runtime, {})
    assert str(hung.value) == "no answer to init_runtime within 2 s"
