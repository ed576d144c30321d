"""Writes the loader's seed corpus: a valid tiny model and its corrupt variants.

    python tests/fuzz/make_corpus.py DIRECTORY

Written when needed (by `make fuzz` into its scratch folder, by test_corpus.py
into a temporary one), never committed: the fixture writers are the source.

Small on purpose (a few KiB each): the fuzzer mutates bytes, and a small seed
keeps every mutation cheap.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from ggufsm.conformance.fixtures import corrupt
from ggufsm.conformance.fixtures.tiny_models import write_tiny_llama

SEED_KINDS = ("truncated_metadata", "bad_version", "wrong_shape", "duplicate_tensor_name", "absurd_array_length",
              "misaligned_offset", "unknown_architecture")


def main(directory: str) -> None:
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as scratch:
        valid = write_tiny_llama(Path(scratch) / "valid.gguf", seed=0, n_embd=8, n_head=1, n_head_kv=1, n_ff=16,
                                 n_layer=1, n_vocab=260)
        (out / "valid.gguf").write_bytes(valid.read_bytes())
        for kind in SEED_KINDS:
            corrupt.write_corrupt(out / f"{kind}.gguf", kind, source=valid)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: make_corpus.py DIRECTORY")
    main(sys.argv[1])
