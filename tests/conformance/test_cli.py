"""`ggufsm conformance run`: exit status, reports, several implementations, expected failures."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import asdict

import pytest


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ggufsm", "conformance", "run", *args],
                          capture_output=True, text=True)


@pytest.fixture
def inputs_file(toy_inputs, tmp_path):
    path = tmp_path / "inputs.json"
    path.write_text(json.dumps(asdict(toy_inputs)))
    return path


def test_a_conforming_implementation_exits_zero_and_gets_every_report(toy_on_child_path, inputs_file, tmp_path):
    done = run_cli("--impl", "python:toy_runtime:make_adapter", "--inputs", str(inputs_file),
                   "--report-dir", str(tmp_path / "report"), "--walk-examples", "5", "--quiet")
    assert done.returncode == 0, done.stderr
    assert "-> OK" in done.stdout
    names = {path.name for path in (tmp_path / "report").iterdir()}
    assert {"results.json", "junit.xml", "summary.md", "toy-runtime.lifecycle.svg"} <= names


def test_failures_exit_one_unless_expected_and_several_implementations_are_compared(toy_on_child_path, inputs_file,
                                                                                     tmp_path):
    common = ["--inputs", str(inputs_file), "--walk-examples", "0", "--quiet", "--cases", "*reset*"]
    broken = ["--impl", "python:toy_runtime:make_reset_keeps_request"]
    failing = run_cli(*broken, "--impl", "python:toy_runtime:make_adapter", *common,
                      "--report-dir", str(tmp_path / "report"))
    assert failing.returncode == 1
    summary = (tmp_path / "report" / "summary.md").read_text()
    assert "## Comparison" in summary and "`ContinuationReady.reset`" in summary

    expect_fail = tmp_path / "expect-fail.txt"
    expect_fail.write_text("# known bugs of the toy\nContinuationReady.reset\nGenerating.reset\n"
                           "behaviour.reset_equals_fresh  # continues after reset\nReady.reset\n")
    tolerated = run_cli(*broken, *common, "--expect-fail", str(expect_fail))
    assert tolerated.returncode == 0, tolerated.stdout + tolerated.stderr
    assert "1 xpass" in tolerated.stdout   # Ready.reset was listed but passes: reported


def test_replay_sends_a_walk_reproduction_to_a_fresh_runtime(toy_on_child_path, toy_inputs, tmp_path):
    from ggufsm.conformance.plan.walk_model import reproduction

    steps = [{"op": "load_model", "args": {"path": toy_inputs.model}},
             {"op": "generate", "args": {"prompt": "a b", "max_tokens": 30, "stop_at_eos": False},
              "cancel_at_first_token": True},
             {"op": "reset", "args": {}},
             {"op": "generate_next_token", "args": {}}]
    script = tmp_path / "repro.jsonl"
    script.write_text(reproduction(steps))

    def replay(factory: str) -> list[str]:
        done = subprocess.run([sys.executable, "-m", "ggufsm", "conformance", "replay", str(script),
                               "--impl", f"python:toy_runtime:{factory}"], capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
        return done.stdout.splitlines()

    correct, broken = replay("make_adapter"), replay("make_reset_keeps_request")
    assert any(line.startswith("generate(") and "Cancelled" in line for line in correct)
    assert correct[-1].startswith("generate_next_token({}) -> InvalidState")
    assert broken[-1].startswith("generate_next_token({}) -> ok")


def test_cases_lists_the_generated_suite_as_data():
    done = subprocess.run([sys.executable, "-m", "ggufsm", "conformance", "cases", "--json"],
                          capture_output=True, text=True, check=True)
    cases = json.loads(done.stdout)["cases"]
    from ggufsm.spec import load_spec

    assert len([case for case in cases if not case["variant"]]) == len(list(load_spec().all_branches()))
    generating_free = next(case for case in cases if case["id"] == "Generating.free")
    assert generating_free["concurrency"]["running"]["op"] == "generate"
    assert generating_free["concurrency"]["call_waits"] is True
    assert (generating_free["call"]["expect"]["error"], generating_free["call"]["expect"]["state"]) == (None, "Freed")


def test_replay_reports_an_implementation_that_dies_with_its_signal_and_exits_one(toy_on_child_path, toy_inputs,
                                                                                  tmp_path):
    script = tmp_path / "repro.jsonl"
    script.write_text("\n".join(json.dumps(request) for request in (
        {"op": "load_model", "args": {"path": toy_inputs.model}}, {"op": "free", "args": {}})))
    done = subprocess.run([sys.executable, "-m", "ggufsm", "conformance", "replay", str(script),
                           "--impl", "python:toy_runtime:make_aborts_on_free"], capture_output=True, text=True)
    assert done.returncode == 1, done.stderr
    assert done.stdout.splitlines()[-1] == "free({}) -> the implementation's process killed by signal 6 (SIGABRT)"


def test_a_failure_prints_the_replay_command_that_makes_its_calls_again(toy_on_child_path, inputs_file):
    failing = run_cli("--impl", "python:toy_runtime:make_reset_keeps_request", "--inputs", str(inputs_file),
                      "--walk-examples", "0", "--cases", "ContinuationReady.reset")
    assert failing.returncode == 1
    done = subprocess.run([sys.executable, "-m", "ggufsm", "conformance", "replay", "--impl",
                           "python:toy_runtime:make_reset_keeps_request", "--inputs", str(inputs_file),
                           "--case", "ContinuationReady.reset"], capture_output=True, text=True)
    assert done.returncode == 1, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("init_runtime(") and any(line.startswith("reset(") for line in lines)
    assert "ContinuationReady.reset: FAIL" in done.stdout
