"""Ctrl-C on a terminal: it stops what runs and never shows a Python traceback.

Each test drives the command through a pseudo-terminal and presses Ctrl-C only
once the program has printed what proves it is in the middle of the work
(synchronised on output, never on time). The generations are made long
(--ignore-eos, tens of thousands of tokens) so that the work cannot be over
before the key arrives.
"""

from __future__ import annotations

from terminal import CTRL_C, CTRL_D

LONG = ["-n", "60000", "--ctx", "65536", "--ignore-eos"]


def test_ctrl_c_in_generate_keeps_what_was_printed_ends_the_line_and_exits_130(terminal, tiny_model):
    session = terminal("generate", "-m", str(tiny_model), "-p", "hello world", *LONG)
    first = session.expect(rb"\S{8}")   # the generation is under way
    printed_before_the_key = session.screen[:first.end()]
    session.send(CTRL_C)
    assert session.wait() == 130
    assert "Traceback" not in session.text and "KeyboardInterrupt" not in session.text
    produced, notice, after = session.screen.rsplit(b"\r\n", 2)
    assert produced.startswith(printed_before_the_key)  # what was printed stays, then a newline
    assert notice.startswith(b"ggufsm: stopped after ") and notice.endswith(b" tokens: interrupted")
    assert after == b""


def test_ctrl_c_in_chat_stops_the_reply_and_returns_to_the_prompt_then_ctrl_d_leaves(terminal, tiny_model):
    session = terminal("chat", "-m", str(tiny_model), *LONG)
    session.expect(r"/exit or Ctrl-D leaves\.\r\n> ")
    session.send(b"hello\r")
    session.expect(rb"hello\r\n(?s:.*?)\S{8}")   # the reply is being written
    session.send(CTRL_C)
    session.expect(r"ggufsm: stopped after \d+ tokens: interrupted\r\n> ")
    session.send(b"/reset\r")
    session.expect(r"\(new conversation\)\r\n> ")
    session.send(CTRL_C)                  # at the prompt: clears the line, does not leave
    session.expect(r"\(Ctrl-D or /exit leaves\)\r\n> ")
    session.send(CTRL_D)
    assert session.wait() == 0
    assert "Traceback" not in session.text


def test_exit_at_the_chat_prompt_leaves_with_status_zero(terminal, tiny_model):
    session = terminal("chat", "-m", str(tiny_model))
    session.expect("> ")
    session.send(b"/exit\r")
    assert session.wait() == 0


def test_an_interrupt_anywhere_in_a_command_exits_130_without_a_traceback(monkeypatch, capsys):
    # Wherever Ctrl-C lands (starting up, loading a model), the dispatcher turns it into 130.
    from ggufsm import cli
    from ggufsm.reference.cli import inspect

    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(inspect, "run", interrupted)
    assert cli.main(["inspect", "-m", "whatever.gguf"]) == 130
    assert capsys.readouterr().err == "\nggufsm: interrupted\n"


def test_ctrl_c_in_conformance_run_stops_it_and_writes_the_partial_report(terminal, tmp_path):
    import json
    import sys

    report = tmp_path / "report"
    session = terminal("conformance", "run", "--impl", f"{sys.executable} -m ggufsm serve-stdio",
                       "--walk-examples", "0", "--report-dir", str(report))
    session.expect(r"\n\s+PASS  \S+")      # a case has run (its progress line)
    session.send(CTRL_C)
    assert session.wait() == 130
    assert "Traceback" not in session.text and "KeyboardInterrupt" not in session.text
    session.expect(r"stopped early: interrupted")
    session.expect(r"wrote \S+results\.json \(partial\)")
    [run] = json.loads((report / "results.json").read_text())
    assert run["stopped"] == "interrupted" and run["ok"] is False
    assert 1 <= len(run["cases"]) < 100
    assert "Partial" in (report / "summary.md").read_text()
