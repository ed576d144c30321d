"""`ggufsm generate`, `ggufsm chat` and `ggufsm demo`: the runtime from the command line."""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING

from ggufsm.spec.errors import GgufsmError

if TYPE_CHECKING:
    from ggufsm.reference.runtime import Runtime

DEFAULT_MODEL = "smollm2"


def register(subparsers) -> None:
    generate = subparsers.add_parser("generate", help="generate text from a prompt (streams it)")
    _add_model_options(generate)
    generate.add_argument("-p", "--prompt", required=True, help="the prompt text")
    generate.add_argument("-n", "--max-tokens", type=int, default=128, help="tokens to generate at most (default 128)")
    generate.add_argument("--chat", action="store_true", help="wrap the prompt in the model's chat template as a user turn")
    generate.add_argument("--json", action="store_true",
                          help="print one JSON object: prompt token ids, generated token ids, text")
    _add_sampling_options(generate)
    generate.set_defaults(handler=_generate)

    chat = subparsers.add_parser("chat", help="chat with a model on the terminal (empty line or EOF ends)")
    _add_model_options(chat)
    chat.add_argument("-n", "--max-tokens", type=int, default=256)
    chat.add_argument("--system", default=None, help="a system message")
    _add_sampling_options(chat)
    chat.set_defaults(handler=_chat)

    demo = subparsers.add_parser("demo", help="the main job: a real generation on the default model, lifecycle visible")
    _add_model_options(demo)
    demo.set_defaults(handler=_demo)


def _add_model_options(parser) -> None:
    parser.add_argument("-m", "--model", default=DEFAULT_MODEL,
                        help=f"a registry name (`ggufsm models list`) or a GGUF path (default {DEFAULT_MODEL})")
    parser.add_argument("-c", "--ctx", type=int, default=None, help="context size (default: the model's, at most 4096)")
    parser.add_argument("-t", "--threads", type=int, default=0, help="threads (default 0: all cores)")


def _add_sampling_options(parser) -> None:
    parser.add_argument("--temperature", type=float, default=None, help="0 is greedy")
    parser.add_argument("--top-k", type=int, default=None)
    parser.add_argument("--top-p", type=float, default=None)
    parser.add_argument("--min-p", type=float, default=None)
    parser.add_argument("--repeat-penalty", type=float, default=None)
    parser.add_argument("--seed", type=int, default=None)


def _sampling_of(args) -> dict:
    values = {"temperature": args.temperature, "top_k": args.top_k, "top_p": args.top_p, "min_p": args.min_p,
              "repetition_penalty": args.repeat_penalty, "seed": args.seed}
    return {name: value for name, value in values.items() if value is not None}


def _open_runtime(args, *, pull: bool = True) -> "Runtime":
    # Imported here so that `ggufsm --help` does not load the C++ core and numpy.
    from ggufsm.reference.model.registry import resolve
    from ggufsm.reference.runtime import Runtime, RuntimeConfig

    runtime = Runtime()
    runtime.init_runtime(RuntimeConfig(n_ctx=args.ctx, n_threads=args.threads))
    runtime.load_model(resolve(args.model, pull=pull))
    return runtime


def _generate(args) -> int:
    runtime = _open_runtime(args)
    runtime.set_sampling(**_sampling_of(args))
    prompt = args.prompt
    if args.chat:
        prompt = runtime_chat_prompt(runtime, [{"role": "user", "content": prompt}])
    if args.json:
        result = runtime.generate(prompt, args.max_tokens)
        print(json.dumps({"prompt_token_ids": result.prompt_token_ids, "token_ids": result.token_ids,
                          "text": result.text, "finish_reason": result.finish_reason}, ensure_ascii=False))
    else:
        for event in runtime.generate_stream(prompt, args.max_tokens):
            print(event.text, end="", flush=True)
        print()
    runtime.free()
    return 0


def runtime_chat_prompt(runtime: "Runtime", messages: list[dict]) -> str:
    from ggufsm.reference.tokenizers.chat import render_chat_for

    return render_chat_for(runtime._model, messages)


def _chat(args) -> int:
    runtime = _open_runtime(args)
    runtime.set_sampling(**_sampling_of(args))
    messages = [{"role": "system", "content": args.system}] if args.system else []
    while True:
        try:
            line = input("> ")
        except EOFError:
            break
        if not line.strip():
            break
        messages.append({"role": "user", "content": line})
        parts = []
        for event in runtime.generate_stream(runtime_chat_prompt(runtime, messages), args.max_tokens):
            parts.append(event.text)
            print(event.text, end="", flush=True)
        print()
        messages.append({"role": "assistant", "content": "".join(parts).strip()})
    runtime.free()
    return 0


def _demo(args) -> int:
    """Walk one handle through its lifecycle on a real model, printing each state it enters."""
    from ggufsm.reference.model.registry import resolve
    from ggufsm.reference.runtime import Runtime

    def step(title: str, action):
        before = runtime.state
        try:
            value = action()
            print(f"  {before:>17} --{title}--> {runtime.state}")
            return value
        except GgufsmError as error:
            print(f"  {before:>17} --{title}--> {runtime.state}   [{error.code}: {error.message}]")
            return None

    model_path = resolve(args.model, pull=True)
    runtime = Runtime()
    print(f"ggufsm demo: {model_path.name}, spec {runtime.diagnostics()['spec_version']}\n")
    step("generate (lazy init)", lambda: runtime.generate("Hello"))
    step("reset", runtime.reset)
    summary = step("load_model", lambda: runtime.load_model(model_path))
    if summary is None:
        return 1
    print(f"{'':21}{summary['architecture']}, {summary['n_vocab']} tokens, "
          f"{summary['file_size'] / 1e6:.1f} MB, loaded in {runtime.diagnostics()['timings']['load_s'] * 1000:.0f} ms")
    step("set_sampling", lambda: runtime.set_sampling(temperature=0.0))
    prompt = runtime_chat_prompt(runtime, [{"role": "user", "content": "What is the capital of France? Answer briefly."}])
    print(f"\n  generate (streamed, greedy):\n  ", end="")
    step_result = step("generate", lambda: _stream_to_stdout(runtime, prompt, 48))
    print(f"{'':21}{step_result}")
    event = step("generate_next_token", runtime.generate_next_token)
    print(f"{'':21}next token id {event.token_id} {event.text!r}" if event else "")
    step("replace_model (corrupt bytes)", lambda: runtime.replace_model(model_path.read_bytes()[:4096]))
    print(f"{'':21}the previous model is still resident: {'model' in runtime.diagnostics()['resident']}")
    step("reset", runtime.reset)
    step("generate (prompt over the context)", lambda: runtime.generate("word " * (runtime.diagnostics()['context']['n_ctx'] + 8)))
    step("reset", runtime.reset)
    step("free", runtime.free)
    step("generate after free", lambda: runtime.generate("Hello"))
    memory = runtime.diagnostics()["memory"]["total"]
    print(f"\nfinal state {runtime.state}; memory held {memory} bytes")
    return 0


def _stream_to_stdout(runtime: "Runtime", prompt: str, max_tokens: int) -> str:
    parts = []
    for event in runtime.generate_stream(prompt, max_tokens):
        parts.append(event.text)
        sys.stdout.write(event.text)
        sys.stdout.flush()
    print()
    diagnostics = runtime.diagnostics()
    request, timings = diagnostics["request"], diagnostics["timings"]
    return (f"{request['prompt_tokens']} prompt tokens at {timings.get('prefill_tok_s', 0):.0f} tok/s, "
            f"{request['generated_tokens']} generated at {timings.get('decode_tok_s', 0):.0f} tok/s "
            f"({request['finish_reason']})")
