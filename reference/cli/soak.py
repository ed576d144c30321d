"""`ggufsm soak`: random operations on several handles from several threads, each checked against the table.

Every table operation is drawn, with good and bad arguments alike (missing,
corrupt and unsupported files, arguments out of range, a prompt with a lone
surrogate, settings nobody knows), on H handles from T threads. A thread
takes a handle's soak lock for a command, so the state the command starts
from is known; queries and ``cancel`` go without it, from any thread, while
commands run. After each command the soak checks the table's invariants:

- the outcome is one the cell names: some branch of (state before, operation)
  ends in the state observed, with the error observed (or none);
- every error is a named error of the table (a raw exception is a violation),
  and its ``state_after`` is the state observed;
- the resident data (``diagnostics()["resident"]``) are those the state
  requires, plus only those it allows.

With ``--change-files`` a thread also truncates or overwrites, in place, the
private copy of the model that some handles load (the file a loaded model
maps), then puts it back.

The figures go to stdout as one JSON object; the exit status is 1 when any
invariant was violated.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import tempfile
import threading
import time
import traceback
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ggufsm.spec import load_spec
from ggufsm.spec.errors import GgufsmError
from ggufsm.spec.names import Operation, State
from ggufsm.spec.table import Spec

MAX_VIOLATIONS_KEPT = 20


def register(subparsers) -> None:
    parser = subparsers.add_parser("soak", help="random operations on several handles and threads, each checked "
                                                "against the lifecycle table's invariants")
    parser.add_argument("--seconds", type=float, default=60.0, help="how long to run (default 60)")
    parser.add_argument("--handles", type=int, default=4, help="runtime handles (default 4)")
    parser.add_argument("--threads", type=int, default=4, help="threads drawing operations (default 4)")
    parser.add_argument("--seed", type=int, default=None, help="seed of the draws (default: random, printed)")
    parser.add_argument("--model", type=Path, default=None,
                        help="a GGUF model to soak (default: the kit's tiny llama, written to a temporary directory)")
    parser.add_argument("--change-files", action="store_true",
                        help="also truncate and overwrite, in place, the private copy of the model that handles load")
    parser.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    seed = args.seed if args.seed is not None else random.randrange(2**32)
    with tempfile.TemporaryDirectory(prefix="ggufsm-soak-") as workdir:
        files = SoakFiles.make(Path(workdir), args.model)
        report = Soak(files, handles=args.handles, threads=args.threads, seed=seed,
                      change_files=args.change_files).run(args.seconds)
    print(json.dumps(report, indent=2))
    return 1 if report["violations"] else 0


# ─── the files the soak loads ─────────────────────────────────────────────────


@dataclass(frozen=True)
class SoakFiles:
    model: Path          # loaded by most draws
    private: Path        # a private copy of the model: the one --change-files changes under its handles
    alt: Path            # a different model (replace installs it)
    corrupt: Path
    unsupported: Path
    missing: Path
    directory: Path
    garbage: Path        # bytes that are not GGUF

    @classmethod
    def make(cls, workdir: Path, model: Path | None) -> SoakFiles:
        from ggufsm.conformance.fixtures import corrupt
        from ggufsm.conformance.fixtures.tiny_models import write_tiny_llama

        tiny = write_tiny_llama(workdir / "tiny.gguf", seed=0, n_ctx=512)
        model = model or tiny
        private = workdir / "private.gguf"
        shutil.copyfile(model, private)
        garbage = workdir / "garbage.bin"
        garbage.write_bytes(random.Random(0).randbytes(4096))
        return cls(model=Path(model), private=private, alt=write_tiny_llama(workdir / "alt.gguf", seed=1, n_ctx=512),
                   corrupt=corrupt.write_corrupt(workdir / "corrupt.gguf", "bad_magic", source=tiny),
                   unsupported=write_tiny_llama(workdir / "unsupported.gguf", architecture="no-such-architecture"),
                   missing=workdir / "missing.gguf", directory=workdir, garbage=garbage)


# ─── the draws ────────────────────────────────────────────────────────────────


def _draw_init(rng: random.Random, files: SoakFiles) -> dict[str, Any]:
    return rng.choice([{"n_ctx": rng.choice([16, 64, 256]), "n_threads": 1}, {"n_threads": 1},
                       {"n_ctx": -1}, {"n_ctx": 1 << 30}, {"n_threads": "two"}, {"bogus": 1}])


def _draw_path(rng: random.Random, files: SoakFiles) -> Any:
    return rng.choice([files.model, files.model, files.private, files.alt, files.corrupt, files.unsupported,
                       files.missing, files.directory, files.garbage, str(files.model), 42])


def _draw_sampling(rng: random.Random) -> dict[str, Any]:
    good = {"temperature": rng.choice([0.0, 0.5, 1.0, 1e-300]), "top_k": rng.choice([0, 5, 40]),
            "top_p": rng.choice([0.5, 1.0]), "min_p": rng.choice([0.0, 0.05]), "seed": rng.choice([None, 7])}
    bad = [{"temperature": -1.0}, {"temperature": 1e-310}, {"temperature": float("nan")}, {"top_p": 0.0},
           {"min_p": float("inf")}, {"seed": -1}, {"no_such_setting": 1}, {"top_k": True}]
    return rng.choice([good, good, good, rng.choice(bad)])


def _draw_prompt(rng: random.Random) -> Any:
    return rng.choice(["Once upon a time", "Once upon a time", [1, 2, 3], "", [], "lone \ud800 surrogate",
                       "word " * 600, [10**9], ["a"], None, 3.5])


def _draw_generate(rng: random.Random) -> tuple[tuple, dict[str, Any]]:
    options = {"stop_at_eos": rng.random() < 0.5, **(_draw_sampling(rng) if rng.random() < 0.3 else {})}
    return (_draw_prompt(rng), rng.choice([0, 1, 4, 16, 64, -1, "4"])), options


# ─── the soak ─────────────────────────────────────────────────────────────────


@dataclass
class Tally:
    ops: Counter = field(default_factory=Counter)
    errors: Counter = field(default_factory=Counter)
    violations: list[str] = field(default_factory=list)
    n_violations: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def count(self, op: str, error: str | None) -> None:
        with self.lock:
            self.ops[op] += 1
            if error is not None:
                self.errors[error] += 1

    def violation(self, text: str) -> None:
        with self.lock:
            self.n_violations += 1
            if len(self.violations) < MAX_VIOLATIONS_KEPT:
                self.violations.append(text)


class Soak:
    def __init__(self, files: SoakFiles, *, handles: int, threads: int, seed: int, change_files: bool):
        from ggufsm.reference.runtime import Runtime

        self.spec: Spec = load_spec()
        self.files, self.seed, self.change_files = files, seed, change_files
        self.handles = [Runtime() for _ in range(handles)]
        self.locks = [threading.Lock() for _ in range(handles)]
        self.n_threads = threads
        self.tally = Tally()
        self._original = files.private.read_bytes()
        self._file_lock = threading.Lock()

    def run(self, seconds: float) -> dict[str, Any]:
        deadline = time.monotonic() + seconds
        workers = [threading.Thread(target=self._worker, args=(random.Random(self.seed + i), deadline),
                                    name=f"soak-{i}", daemon=True) for i in range(self.n_threads)]
        started = time.monotonic()
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        elapsed = time.monotonic() - started
        for handle in self.handles:
            self._command(handle, self.handles.index(handle), Operation.free, lambda h: h.free())
        return {"seed": self.seed, "seconds": round(elapsed, 1), "handles": len(self.handles),
                "threads": self.n_threads, "change_files": self.change_files,
                "ops": sum(self.tally.ops.values()), "by_op": dict(sorted(self.tally.ops.items())),
                "errors": dict(sorted(self.tally.errors.items())), "violations": self.tally.n_violations,
                "first_violations": self.tally.violations}

    def _worker(self, rng: random.Random, deadline: float) -> None:
        while time.monotonic() < deadline:
            index = rng.randrange(len(self.handles))
            handle = self.handles[index]
            roll = rng.random()
            try:
                if roll < 0.15:
                    self._query(handle, rng)
                elif self.change_files and roll < 0.17:
                    self._change_file(rng)
                else:
                    self._random_command(handle, index, rng)
            except Exception:  # noqa: BLE001  the soak's own fault must be seen, not end a thread quietly
                self.tally.violation(f"the soak failed: {traceback.format_exc(limit=4)}")

    def _query(self, handle, rng: random.Random) -> None:
        op = rng.choice([Operation.cancel, Operation.state, Operation.last_error, Operation.diagnostics])
        try:
            if op == Operation.cancel:
                handle.cancel()
            elif op == Operation.diagnostics:
                handle.diagnostics()
            else:
                getattr(handle, op)
        except Exception as error:  # noqa: BLE001  a query never fails: any exception is a violation
            self.tally.violation(f"{op} raised {type(error).__name__}: {error}")
        self.tally.count(op, None)

    def _random_command(self, handle, index: int, rng: random.Random) -> None:
        files = self.files
        op = rng.choice([Operation.init_runtime, Operation.load_model, Operation.load_model, Operation.set_sampling,
                         Operation.generate, Operation.generate, Operation.generate, Operation.generate_next_token,
                         Operation.generate_next_token, Operation.reset, Operation.free, Operation.replace_model])
        call: Callable[[Any], Any]
        if op == Operation.init_runtime:
            settings = _draw_init(rng, files)
            call = lambda h: h.init_runtime(**settings)  # noqa: E731
        elif op in (Operation.load_model, Operation.replace_model):
            path = _draw_path(rng, files)
            call = lambda h: getattr(h, op)(path)  # noqa: E731
        elif op == Operation.set_sampling:
            sampling = _draw_sampling(rng)
            call = lambda h: h.set_sampling(**sampling)  # noqa: E731
        elif op == Operation.generate:
            positional, options = _draw_generate(rng)
            call = lambda h: h.generate(*positional, **options)  # noqa: E731
        else:
            call = lambda h: getattr(h, op)()  # noqa: E731
        self._command(handle, index, op, call)

    def _command(self, handle, index: int, op: str, call: Callable[[Any], Any]) -> None:
        with self.locks[index]:
            before = handle.state
            error: GgufsmError | None = None
            try:
                call(handle)
            except GgufsmError as raised:
                error = raised
            except Exception as raised:  # noqa: BLE001  a raw exception left a public operation
                self.tally.violation(f"{before}.{op} raised {type(raised).__name__}: {raised}")
                self.tally.count(op, type(raised).__name__)
                return
            after = handle.state
            self.tally.count(op, error.code if error else None)
            self._check(handle, before, op, after, error)

    def _check(self, handle, before: str, op: str, after: str, error: GgufsmError | None) -> None:
        code = error.code if error is not None else None
        allowed = {(branch.outcome.to, branch.outcome.error) for branch in self._branches(before, op)}
        if (after, code) not in allowed:
            self.tally.violation(f"{before}.{op} ended in {after} with {code}: the cell allows {sorted(map(str, allowed))}"
                                 + (f" ({error.message})" if error else ""))
        if error is not None and error.state_after is not None and error.state_after != after:
            self.tally.violation(f"{before}.{op}: {code}.state_after is {error.state_after}, the state is {after}")
        entry = self.spec.states[after]
        present = set(handle.diagnostics()["resident"])
        if not entry.required <= present or not present <= entry.required | entry.optional:
            self.tally.violation(f"{before}.{op} -> {after}: resident {sorted(present)}; required "
                                 f"{sorted(entry.required)}, optional {sorted(entry.optional)}")

    def _branches(self, state: str, op: str):
        branches = self.spec.cells[(state, op)]
        if any(branch.outcome.lazy_init for branch in branches):
            return self.spec.cells[(State.Initialized, op)]
        return branches

    def _change_file(self, rng: random.Random) -> None:
        """Truncate or overwrite the private copy in place (as `cp` does), then put its bytes back."""
        with self._file_lock:
            path = self.files.private
            if rng.random() < 0.5:
                with open(path, "r+b") as file:
                    file.truncate(rng.randrange(len(self._original)))
            else:
                with open(path, "r+b") as file:
                    file.write(random.Random(rng.random()).randbytes(len(self._original)))
            self.tally.count("change_file", None)
            with open(path, "r+b") as file:
                file.write(self._original)
                file.truncate(len(self._original))
