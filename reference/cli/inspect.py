"""`ggufsm inspect [-m] MODEL [--json]`: what a GGUF model is, as the C++ loader validated it.

Architecture, hyperparameters, tokenizer kind and size, tensor counts and
bytes by type, file size. A file the loader refuses prints the named error
(src/ggufsm/cli.py) and exits non-zero.
"""

from __future__ import annotations

import json
from typing import Any

from ggufsm.reference.cli.options import add_model_option, model_path

TOKENIZER_KINDS = {"gpt2": "byte-level BPE", "llama": "SentencePiece"}


def register(subparsers) -> None:
    parser = subparsers.add_parser("inspect", help="architecture, hyperparameters, tokenizer and tensors of a GGUF model")
    add_model_option(parser)
    parser.add_argument("model_argument", nargs="?", metavar="MODEL", help="the same as -m MODEL")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.set_defaults(handler=run)


def run(args) -> int:
    # Imported here so that `ggufsm --help` does not load gguf.
    from ggufsm.reference.model.loaded_model import validate_model_file

    path = model_path(args.model_argument or args.model)
    with validate_model_file(path) as model:  # the validation load_model runs: both agree on every file
        summary = describe(model)
    print(json.dumps(summary, ensure_ascii=False) if args.json else render_text(summary))
    return 0


def describe(model) -> dict[str, Any]:
    """The model's summary as plain data (the --json output)."""
    metadata, hp = model.metadata, dict(model.hyperparameters)
    tokenizer_model = hp.pop("tokenizer_model")
    del hp["architecture"]  # reported once, at the top
    by_type: dict[str, dict[str, int]] = {}
    for info in model.tensors.values():
        entry = by_type.setdefault(info.type.name, {"count": 0, "bytes": 0})
        entry["count"] += 1
        entry["bytes"] += info.nbytes
    return {
        "path": str(model.path) if model.path is not None else model.source,
        "file_size": model.file_size,
        "gguf_version": model.version,
        "architecture": model.architecture,
        "name": metadata.get("general.name"),
        "hyperparameters": hp,
        "tokenizer": {
            "model": tokenizer_model,
            "kind": TOKENIZER_KINDS.get(tokenizer_model, tokenizer_model),
            "pre": metadata.get("tokenizer.ggml.pre"),
            "size": len(metadata["tokenizer.ggml.tokens"]),
            "merges": len(metadata.get("tokenizer.ggml.merges", [])),
            "bos_token_id": metadata.get("tokenizer.ggml.bos_token_id"),
            "eos_token_id": metadata.get("tokenizer.ggml.eos_token_id"),
            "chat_template": "tokenizer.chat_template" in metadata,
        },
        "tensors": {"count": len(model.tensors), "by_type": dict(sorted(by_type.items()))},
        "metadata_keys": len(metadata),
    }


def render_text(summary: dict[str, Any]) -> str:
    tokenizer, tensors = summary["tokenizer"], summary["tensors"]
    lines = [
        f"{summary['path']}",
        f"  file size      {summary['file_size']:,} bytes (GGUF v{summary['gguf_version']}, "
        f"{summary['metadata_keys']} metadata keys)",
        f"  architecture   {summary['architecture']}" + (f" ({summary['name']})" if summary["name"] else ""),
        "  hyperparameters",
        *(f"    {key:<16} {value}" for key, value in summary["hyperparameters"].items()),
        f"  tokenizer      {tokenizer['kind']} ({tokenizer['model']}"
        + (f", pre {tokenizer['pre']}" if tokenizer["pre"] else "") + f"), {tokenizer['size']:,} tokens"
        + (f", {tokenizer['merges']:,} merges" if tokenizer["merges"] else "")
        + (", chat template" if tokenizer["chat_template"] else ""),
        f"  tensors        {tensors['count']}",
        *(f"    {name:<8} {entry['count']:>4} tensors {entry['bytes']:>14,} bytes"
          for name, entry in tensors["by_type"].items()),
    ]
    return "\n".join(lines)
