"""The protocol server runs commands on long-lived workers: a client that waits for each answer has all
its commands run on one thread (one malloc arena, so a load/free cycle's resident size does not step
with whichever arena a new thread drew), and commands sent together still each run at once."""

from __future__ import annotations

import json
import os
import threading

from ggufsm.conformance import protocol
from ggufsm.conformance.adapter import PythonAdapter


class ThreadRecorder(PythonAdapter):
    """Records the OS thread each command ran on; `reset` can be held until released."""

    name = "thread-recorder"

    def __init__(self) -> None:
        super().__init__()
        self.threads: list[int] = []
        self.hold: threading.Event | None = None
        self.holding = threading.Semaphore(0)

    def op_reset(self) -> None:
        self.threads.append(threading.get_native_id())
        if self.hold is not None:
            self.holding.release()
            self.hold.wait()


class Answers:
    """The server's output stream: each answer's id, waited for by event."""

    def __init__(self) -> None:
        self._lines: list[dict] = []
        self._changed = threading.Condition()

    def write(self, text: str) -> None:
        with self._changed:
            self._lines += [json.loads(line) for line in text.splitlines()]
            self._changed.notify_all()

    def flush(self) -> None:
        pass

    def wait_for(self, request_id: int) -> dict:
        with self._changed:
            self._changed.wait_for(lambda: any(line.get("id") == request_id for line in self._lines))
            return next(line for line in self._lines if line.get("id") == request_id)


class ServedRecorder:
    def __init__(self) -> None:
        self.adapter = ThreadRecorder()
        self.answers = Answers()
        read, self._write = os.pipe()
        self.server = protocol.Server(lambda: self.adapter, os.fdopen(read, "rb"), self.answers)
        self._serving = threading.Thread(target=self.server.serve, daemon=True)
        self._serving.start()

    def send(self, request_id: int, op: str) -> None:
        os.write(self._write, protocol.encode(protocol.request(request_id, op)).encode())

    def close(self) -> None:
        os.close(self._write)   # end of input: the server drops its handles and stops its workers
        self._serving.join()


def test_a_client_that_waits_for_each_answer_has_every_command_run_on_one_thread():
    served = ServedRecorder()
    try:
        for request_id in range(20):
            served.send(request_id, "reset")
            assert served.answers.wait_for(request_id)["ok"]
    finally:
        served.close()
    assert len(served.adapter.threads) == 20
    assert len(set(served.adapter.threads)) == 1
    assert served.server.workers.started == 1


def test_commands_sent_together_each_run_at_once_on_a_worker_of_their_own():
    served = ServedRecorder()
    served.adapter.hold = threading.Event()
    try:
        for request_id in range(3):
            served.send(request_id, "reset")
        for _ in range(3):   # all three are inside the adapter at once: none waits for a worker
            served.adapter.holding.acquire()
        served.adapter.hold.set()
        assert all(served.answers.wait_for(request_id)["ok"] for request_id in range(3))
    finally:
        served.close()
    assert len(set(served.adapter.threads)) == 3 == served.server.workers.started


def test_a_command_read_just_before_the_end_of_input_is_run_not_refused():
    served = ServedRecorder()
    served.send(0, "reset")
    served.close()   # end of input right behind it: the server closes the handle once the command has begun
    answer = served.answers.wait_for(0)
    assert answer["ok"], answer
    assert len(served.adapter.threads) == 1
