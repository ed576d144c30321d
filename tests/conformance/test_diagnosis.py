"""A runtime under test that cannot be tested gets a one-line diagnosis and a non-zero exit, never a
Python traceback (unless --debug); the cases that ran before it broke are still reported."""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
from dataclasses import asdict

import pytest


def conformance(*args: str, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ggufsm", "conformance", *args], capture_output=True, text=True,
                          cwd=cwd)


# --timeout 1 only bounds how long `sleep 100` is waited for: it never answers, however fast the machine.
@pytest.mark.parametrize(("impl", "diagnosis"), [
    ("nonexistent-binary", "nonexistent-binary: could not start: No such file or directory"),
    ("cat", "cat: answered something that is not the protocol: '{\"id\":1,\"op\":\"hello\",\"args\":{}}'"),
    ("true", "true: could not start: it exited with status 0 before answering `hello`"),
    ("sleep 100", "sleep 100: did not answer `hello` within 1 s"),
    ("python:nomod:make", "python:nomod:make: could not start: no module named 'nomod' on the Python path"),
    ("python:nomod", "python:nomod: could not start: expected python:MODULE:FACTORY"),
])
def test_an_implementation_that_cannot_be_tested_gets_a_one_line_diagnosis_and_exit_one(impl, diagnosis, tmp_path):
    # Only `sleep 100` is given 1 s: the others answer (or end) at once, and a busy machine may take
    # longer than 1 s to let `cat` echo the hello.
    timeout = "1" if impl.startswith("sleep") else "600"
    done = conformance("run", "--impl", impl, "--walk-examples", "0", "--timeout", timeout,
                       "--report-dir", str(tmp_path / "report"))
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    assert done.stderr.splitlines()[-1] == f"ggufsm conformance run: {diagnosis}"
    assert not (tmp_path / "report").exists()   # no case ran: nothing to report


def test_debug_shows_the_traceback_behind_the_diagnosis():
    done = conformance("run", "--impl", "nonexistent-binary", "--walk-examples", "0", "--debug")
    assert done.returncode == 1
    assert "Traceback" in done.stderr and "FileNotFoundError" in done.stderr
    assert done.stderr.splitlines()[-1] == "ggufsm conformance run: nonexistent-binary: could not start: " \
                                           "No such file or directory"


def test_replay_of_a_missing_file_or_to_a_broken_runtime_is_one_line(tmp_path):
    missing = conformance("replay", "missing.txt", "--impl", "cat", cwd=tmp_path)
    assert (missing.returncode, missing.stderr) == (
        2, "ggufsm conformance replay: cannot read missing.txt: No such file or directory\n")
    script = tmp_path / "repro.jsonl"
    script.write_text(json.dumps({"op": "init_runtime", "args": {}}) + "\n")
    broken = conformance("replay", str(script), "--impl", "true")
    assert broken.returncode == 1
    assert broken.stderr == ("ggufsm conformance replay: true: could not start: it exited with status 0 "
                             "before answering `hello`\n")


def test_a_runtime_that_cannot_restart_after_a_crash_stops_the_run_with_a_partial_report(
        toy_on_child_path, toy_inputs, tmp_path):
    # It serves once (and aborts on its first free); started again, it exits at once.
    started_once = tmp_path / "started-once"
    serve = shlex.join([sys.executable, "-m", "ggufsm", "conformance", "serve", "--impl",
                        "python:toy_runtime:make_aborts_on_free"])
    impl = f"sh -c {shlex.quote(f'[ -e {started_once} ] && exit 3; touch {started_once}; exec {serve}')}"
    inputs = tmp_path / "inputs.json"
    inputs.write_text(json.dumps(asdict(toy_inputs)))
    done = conformance("run", "--impl", impl, "--inputs", str(inputs), "--walk-examples", "0",
                       "--report-dir", str(tmp_path / "report"))
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    assert done.stderr.splitlines()[-1].endswith("could not start: it exited with status 3 before answering `hello`")
    [run] = json.loads((tmp_path / "report" / "results.json").read_text())
    assert run["stopped"].endswith("before answering `hello`") and run["ok"] is False
    assert any("signal 6" in case["message"] for case in run["cases"])   # the crash is the last case that ran
