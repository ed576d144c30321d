"""The options every model command shares, written once so that they mean the same everywhere.

- the model: `-m/--model`, default smollm2, a registry name fetched into the cache when
  missing, or a GGUF path;
- the runtime: `-c/--ctx`, `-t/--threads`;
- sampling: the defaults are SamplingConfig's, so `--help` states what the runtime does;
- chat: `--chat-template FILE`, and the notice when the template is not the file's.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from ggufsm.reference.runtime.config import RuntimeConfig
from ggufsm.reference.sampling import SamplingConfig
from ggufsm.spec.errors import InvalidInput

if TYPE_CHECKING:
    from ggufsm.reference.runtime import Runtime
    from ggufsm.reference.tokenizers.chat import ChatTemplate

DEFAULT_MODEL = "smollm2"
SAMPLING_DEFAULTS = SamplingConfig()


def add_model_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-m", "--model", default=DEFAULT_MODEL, metavar="MODEL",
                        help="a registry name (`ggufsm models list`; fetched into the model cache when missing) "
                             "or a path to a GGUF file")


def model_path(name_or_path: str) -> Path:
    """The model's file: a registry name is pulled (with progress on stderr) when not cached."""
    from ggufsm.reference.model.registry import resolve

    return resolve(name_or_path, pull=True)


def add_runtime_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-c", "--ctx", type=int, default=None, metavar="N",
                        help=f"context size in tokens (default: the model's training context, "
                             f"at most {RuntimeConfig.DEFAULT_MAX_CTX})")
    parser.add_argument("-t", "--threads", type=int, default=0, metavar="N", help="threads; 0 is every core")


def add_sampling_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group(
        "sampling", "applied in llama.cpp's order: repeat penalty, top-k, top-p, min-p, temperature; "
                    "without --seed every run draws differently (use --temperature 0 for repeatable output)")
    defaults = SAMPLING_DEFAULTS
    group.add_argument("--temperature", type=float, default=defaults.temperature, metavar="T", help="0 is greedy")
    group.add_argument("--top-k", type=int, default=defaults.top_k, metavar="K",
                       help="keep the K likeliest tokens; 0 turns it off")
    group.add_argument("--top-p", type=float, default=defaults.top_p, metavar="P",
                       help="keep the likeliest tokens whose probabilities sum to P; 1 turns it off")
    group.add_argument("--min-p", type=float, default=defaults.min_p, metavar="P",
                       help="drop tokens less likely than P times the likeliest; 0 turns it off")
    group.add_argument("--repeat-penalty", type=float, default=defaults.repetition_penalty, metavar="X",
                       help="divide the logits of recently seen tokens by X; 1 turns it off")
    group.add_argument("--repeat-last-n", type=int, default=defaults.repeat_last_n, metavar="N",
                       help="how many recent tokens the repeat penalty looks at")
    group.add_argument("--seed", type=int, default=defaults.seed, metavar="S",
                       help="the sampler's random seed (default: a fresh one each run)")


def sampling_of(args: argparse.Namespace) -> dict:
    return {"temperature": args.temperature, "top_k": args.top_k, "top_p": args.top_p, "min_p": args.min_p,
            "repetition_penalty": args.repeat_penalty, "repeat_last_n": args.repeat_last_n, "seed": args.seed}


def open_runtime(args: argparse.Namespace) -> Runtime:
    """A runtime with the model of `args` loaded and its sampling set."""
    # Imported here so that `ggufsm --help` does not load the C++ core.
    from ggufsm.reference.runtime import Runtime

    runtime = Runtime()
    runtime.init_runtime(RuntimeConfig(n_ctx=args.ctx, n_threads=args.threads))
    runtime.load_model(model_path(args.model))
    if hasattr(args, "temperature"):
        runtime.set_sampling(**sampling_of(args))
    return runtime


def add_ignore_eos_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--ignore-eos", action="store_true",
                        help="go on past the end-of-generation token until -n or the context is full")


def add_chat_template_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--chat-template", type=Path, default=None, metavar="FILE",
                        help="a Jinja chat template to use instead of the model's (default: the file's "
                             "tokenizer.chat_template, else its architecture's known format)")


def chat_template(args: argparse.Namespace, runtime: Runtime) -> ChatTemplate:
    """The template chat prompts are made with; says on stderr when it is not the file's own."""
    from ggufsm.reference.tokenizers.chat import architecture_of, chat_template_for, given_template

    if args.chat_template is not None:
        try:
            text = args.chat_template.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as error:
            raise InvalidInput(f"--chat-template {args.chat_template}: cannot read it ({error})") from None
        return given_template(text, f"the template in {args.chat_template}")
    model = runtime._model
    assert model is not None, "open_runtime loads the model"
    template = chat_template_for(model.tokenizer, architecture_of(model))
    if template.origin == "built-in":
        print(f"ggufsm: {Path(model.source).name} has no chat template; using {template.description}. "
              "A file without one is often a base model, which continues text rather than answering; "
              "`--chat-template FILE` gives another.", file=sys.stderr)
    return template


def report_unusual_finish(runtime: Runtime) -> None:
    """A one-line notice on stderr when the last generation stopped for another reason than
    its end-of-generation token or its token budget."""
    from ggufsm.spec.names import FinishReason

    diagnostics = runtime.diagnostics()
    request = diagnostics["request"] or {}
    count = request.get("generated_tokens", 0)
    if request.get("finish_reason") == FinishReason.context:
        print(f"ggufsm: stopped after {count} tokens: the context is full "
              f"({diagnostics['context']['n_ctx']} tokens; -c/--ctx sets it)", file=sys.stderr)
    elif request.get("finish_reason") == FinishReason.cancelled:
        print(f"ggufsm: stopped after {count} tokens: interrupted", file=sys.stderr)
