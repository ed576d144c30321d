"""`ggufsm tokenize [-m MODEL] TEXT [--json]`: a model's token ids and pieces for a text."""

from __future__ import annotations

import json

from ggufsm.reference.cli.options import add_model_option, model_path


def register(subparsers) -> None:
    parser = subparsers.add_parser("tokenize", help="token ids and pieces of a text under a model's tokenizer")
    add_model_option(parser)
    parser.add_argument("text", metavar="TEXT", help="the text to tokenize")
    parser.add_argument("--no-special", action="store_true",
                        help="add no bos/eos and read control-token text as plain text")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.set_defaults(handler=run)


def run(args) -> int:
    # Imported here so that `ggufsm --help` does not load numpy and gguf.
    from ggufsm.reference.tokenizers.tokenizer import read_model_metadata, tokenizer_from_metadata

    path = model_path(args.model)
    tokenizer = tokenizer_from_metadata(read_model_metadata(path))
    special = not args.no_special
    ids = tokenizer.encode(args.text, add_special=special, parse_special=special)
    pieces = [tokenizer.token_to_piece(token_id).decode("utf-8", errors="backslashreplace") for token_id in ids]
    if args.json:
        print(json.dumps({"model": str(path), "text": args.text, "ids": ids, "pieces": pieces,
                          "count": len(ids)}, ensure_ascii=False))
        return 0
    for token_id, piece in zip(ids, pieces, strict=True):
        print(f"{token_id:>7}  {piece!r}")
    print(f"{len(ids)} tokens")
    return 0
