"""`ggufsm generate`: one prompt, its continuation streamed to standard output.

Ctrl-C stops the generation: what was produced stays printed, a newline ends
it, and the exit status is 130 (the shell's for SIGINT). A stop for another
reason than the end-of-generation token or -n (a full context, an interrupt)
is noted on standard error.
"""

from __future__ import annotations

import json

from ggufsm.reference.cli.options import (
    add_chat_template_option,
    add_ignore_eos_option,
    add_model_option,
    add_runtime_options,
    add_sampling_options,
    chat_template,
    open_runtime,
    report_unusual_finish,
)

INTERRUPTED = 130


def register(subparsers) -> None:
    parser = subparsers.add_parser("generate", help="generate text from a prompt, streamed as it comes")
    add_model_option(parser)
    parser.add_argument("-p", "--prompt", required=True, help="the prompt text")
    parser.add_argument("-n", "--max-tokens", type=int, default=128, metavar="N", help="tokens to generate at most")
    parser.add_argument("--chat", action="store_true", help="send the prompt as a user turn of the chat template")
    add_chat_template_option(parser)
    add_ignore_eos_option(parser)
    parser.add_argument("--json", action="store_true",
                        help="print one JSON object at the end: prompt and generated token ids, text, finish reason")
    add_runtime_options(parser)
    add_sampling_options(parser)
    parser.set_defaults(handler=run)


def run(args) -> int:
    runtime = open_runtime(args)
    prompt = args.prompt
    if args.chat:
        from ggufsm.reference.tokenizers.chat import render_chat_for

        prompt = render_chat_for(runtime._model, [{"role": "user", "content": prompt}],
                                 template=chat_template(args, runtime))
    stop_at_eos = not args.ignore_eos
    if args.json:
        result = runtime.generate(prompt, args.max_tokens, stop_at_eos=stop_at_eos)
        print(json.dumps({"prompt_token_ids": result.prompt_token_ids, "token_ids": result.token_ids,
                          "text": result.text, "finish_reason": result.finish_reason}, ensure_ascii=False))
        report_unusual_finish(runtime)
        return 0
    try:
        for event in runtime.generate_stream(prompt, args.max_tokens, stop_at_eos=stop_at_eos):
            print(event.text, end="", flush=True)
    except KeyboardInterrupt:
        # Leaving the stream cancelled the request; its tokens so far are printed already.
        print(flush=True)
        report_unusual_finish(runtime)
        return INTERRUPTED
    print(flush=True)
    report_unusual_finish(runtime)
    runtime.free()
    return 0
