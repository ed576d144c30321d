"""`ggufsm demo`: one handle walked through its lifecycle on a real model, each transition printed."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

from ggufsm.reference.cli.options import add_chat_template_option, add_model_option, chat_template, model_path
from ggufsm.spec.errors import GgufsmError

if TYPE_CHECKING:
    from ggufsm.reference.runtime import Runtime

QUESTION = "What is the capital of France? Answer briefly."


def register(subparsers) -> None:
    parser = subparsers.add_parser("demo", help="the main job: a real generation on the default model, "
                                                "every lifecycle transition printed")
    add_model_option(parser)
    add_chat_template_option(parser)
    parser.set_defaults(handler=run)


def run(args) -> int:
    from ggufsm.reference.runtime import Runtime
    from ggufsm.reference.tokenizers.chat import render_chat_for

    def step(title: str, action):
        before = runtime.state
        try:
            value = action()
            print(f"  {before:>17} --{title}--> {runtime.state}")
            return value
        except GgufsmError as error:
            print(f"  {before:>17} --{title}--> {runtime.state}   [{error.code}: {error.message}]")
            return None

    path = model_path(args.model)
    runtime = Runtime()
    print(f"ggufsm demo: {path.name}, spec {runtime.diagnostics()['spec_version']}\n")
    step("generate (lazy init)", lambda: runtime.generate("Hello"))
    step("reset", runtime.reset)
    summary = step("load_model", lambda: runtime.load_model(path))
    if summary is None:
        return 1
    print(f"{'':21}{summary['architecture']}, {summary['n_vocab']} tokens, "
          f"{summary['file_size'] / 1e6:.1f} MB, loaded in {runtime.diagnostics()['timings']['load_s'] * 1000:.0f} ms")
    step("set_sampling", lambda: runtime.set_sampling(temperature=0.0))
    sys.stdout.flush()
    prompt = render_chat_for(runtime._model, [{"role": "user", "content": QUESTION}], template=chat_template(args, runtime))
    print(f"\n  generate (streamed, greedy): {QUESTION}\n  ", end="")
    step_result = step("generate", lambda: _stream_to_stdout(runtime, prompt, 48))
    print(f"{'':21}{step_result}")
    event = step("generate_next_token", runtime.generate_next_token)
    print(f"{'':21}next token id {event.token_id} {event.text!r}" if event else "")
    step("replace_model (corrupt bytes)", lambda: runtime.replace_model(path.read_bytes()[:4096]))
    print(f"{'':21}the previous model is still resident: {'model' in runtime.diagnostics()['resident']}")
    step("reset", runtime.reset)
    step("generate (prompt over the context)",
         lambda: runtime.generate("word " * (runtime.diagnostics()['context']['n_ctx'] + 8)))
    step("reset", runtime.reset)
    step("free", runtime.free)
    step("generate after free", lambda: runtime.generate("Hello"))
    memory = runtime.diagnostics()["memory"]["total"]
    print(f"\nfinal state {runtime.state}; memory held {memory} bytes")
    return 0


def _stream_to_stdout(runtime: Runtime, prompt: str, max_tokens: int) -> str:
    for event in runtime.generate_stream(prompt, max_tokens):
        sys.stdout.write(event.text)
        sys.stdout.flush()
    print()
    diagnostics = runtime.diagnostics()
    request, timings = diagnostics["request"], diagnostics["timings"]
    return (f"{request['prompt_tokens']} prompt tokens at {timings.get('prefill_tok_s', 0):.0f} tok/s, "
            f"{request['generated_tokens']} generated at {timings.get('decode_tok_s', 0):.0f} tok/s "
            f"({request['finish_reason']})")
