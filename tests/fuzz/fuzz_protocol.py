"""Fuzz target: the protocol server's reading of a byte stream, line by line (atheris, coverage-guided).

Each input is a whole stream of request lines, served by ``protocol.Server``
against the reference runtime on the kit's tiny model, with a model root
holding only that model (so a load can open nothing else). The server's
commands run on the reading thread here (``dispatch`` is made synchronous),
so an input always does the same thing. Checked for every input:

- serve() returns (a raised exception is the fuzzer's crash);
- every line read gets exactly one answer, and every message written is
  JSON that follows the protocol schema.

Run it (opt-in, any length): `make fuzz-protocol FUZZ_SECONDS=600` (on a scratch copy of the corpus),
or by hand: python tests/fuzz/fuzz_protocol.py <a copy of tests/fuzz/protocol_corpus> -max_total_time=600.
`make fuzz-ci` runs it 60 s; tests/fuzz/test_protocol_corpus.py replays the committed corpus in the
ordinary test run.
"""

from __future__ import annotations

import io
import json
import sys
import tempfile
from pathlib import Path

CORPUS = Path(__file__).with_name("protocol_corpus")


class Collected:
    def __init__(self) -> None:
        self.text: list[str] = []

    def write(self, text: str) -> int:
        self.text.append(text)
        return len(text)

    def flush(self) -> None:
        pass


class ProtocolTarget:
    def __init__(self) -> None:
        from ggufsm.conformance import protocol
        from ggufsm.conformance.adapters.reference import ReferenceAdapter
        from ggufsm.conformance.fixtures.tiny_models import write_tiny_llama

        self.protocol = protocol
        self.root = Path(tempfile.mkdtemp(prefix="ggufsm-fuzz-"))
        write_tiny_llama(self.root / "tiny.gguf", n_embd=32, n_head=2, n_head_kv=1, n_ff=64, n_ctx=256)
        self.open_adapter = lambda: ReferenceAdapter(model_roots=[str(self.root)])
        self._make_dispatch_synchronous()

    def _make_dispatch_synchronous(self) -> None:
        from ggufsm.conformance.adapter import PAUSE, PAUSE_AFTER

        def dispatch_now(dispatcher, request_id, op, args, inline):
            refused = dispatcher.admit(op)
            if refused is not None:
                dispatcher.server.write(self.protocol.response(request_id, refused))
                return
            if not inline:   # a pause would hold the one thread that could read its resume
                args.pop(PAUSE, None), args.pop(PAUSE_AFTER, None)
            dispatcher._run(request_id, op, args)

        self._dispatch_now = dispatch_now

    def __call__(self, data: bytes) -> None:
        protocol = self.protocol
        consumed = [0]
        read_lines = protocol.request_lines

        def counted(stream, limit):
            for line in read_lines(stream, limit):
                consumed[0] += 1
                yield line

        # Both patched for this input only: the test process goes on serving with the real ones.
        threaded_dispatch = protocol.HandleDispatcher.dispatch
        protocol.request_lines = counted  # type: ignore[assignment]
        protocol.HandleDispatcher.dispatch = self._dispatch_now  # type: ignore[method-assign]
        try:
            out = Collected()
            server = protocol.Server(self.open_adapter, io.BytesIO(data), out)  # type: ignore[arg-type]
            server.max_line_bytes = 64 * 1024
            server.serve()
        finally:
            protocol.request_lines = read_lines  # type: ignore[assignment]
            protocol.HandleDispatcher.dispatch = threaded_dispatch  # type: ignore[method-assign]
        messages = [json.loads(line) for line in "".join(out.text).splitlines()]
        answers = [message for message in messages if "ok" in message]
        assert len(answers) == consumed[0], f"{consumed[0]} lines read, {len(answers)} answers"
        for message in messages:
            problems = protocol.schema_problems(message)
            assert not problems, (message, problems)


def main() -> None:
    import atheris

    target = ProtocolTarget()
    # After the imports, not around them: the editable install's import hook hides the package from
    # atheris.instrument_imports, so the loaded code is instrumented in place.
    atheris.instrument_all()
    atheris.Setup(sys.argv, target)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
