"""The suite's inputs for a run: model files written into a work directory, or named in a JSON file.

By default every model comes from the kit's fixtures (``conformance.fixtures``):
two tiny successor llamas (``fixtures.successor``: constructed weights, so
greedy outputs are distinct and known, a known prompt reaches the
end-of-generation token, seeded draws differ by seed; the model walks its
token cycle with stride 1, the one a replace installs with stride 2), a
corrupt variant and one with an architecture no runtime knows. ``--model`` swaps in a real model for the first; ``--inputs FILE``
names every file (for runtimes that need models of their own).
``placeholder_inputs`` are the default run's inputs with every file a
placeholder: what the suite as data (``conformance/suite.json``) is planned with.
"""

from __future__ import annotations

import json
from dataclasses import fields
from pathlib import Path

from ggufsm.conformance.plan.recipes import SuiteInputs
from ggufsm.conformance.plan.suite_file import placeholder

# The tiny models' training context: it holds the suite's n_ctx (128) and the cancel cases' context.
TINY_N_CTX = 4096
# A generate that fills this context on the tiny model takes about 1 s (32 us a token at the start,
# 230 us on average over the whole context; measured on 2 cores), while a cancel crosses the pipe to a
# serve-stdio child in 1 to 10 ms: it lands long before the context is full, however loaded the machine.
TINY_CANCEL_N_CTX = 4096


def prepare_inputs(workdir: Path, *, model: Path | None = None, inputs_file: Path | None = None) -> SuiteInputs:
    if inputs_file is not None:
        return inputs_from_file(inputs_file)
    from ggufsm.conformance.fixtures import corrupt, overflow, successor

    workdir.mkdir(parents=True, exist_ok=True)
    tiny = successor.write_successor_llama(workdir / "tiny-llama.gguf", stride=1, n_ctx=TINY_N_CTX)
    alt = successor.write_successor_llama(workdir / "tiny-llama-other.gguf", stride=2, n_ctx=TINY_N_CTX)
    return SuiteInputs(
        model=str(model or tiny),
        alt_model=str(alt),
        corrupt_model=str(corrupt.write_corrupt(workdir / "corrupt.gguf", "bad_magic", source=tiny)),
        unsupported_model=str(successor.write_successor_llama(workdir / "unknown-architecture.gguf", stride=3,
                                                              n_ctx=TINY_N_CTX, architecture="no-such-architecture")),
        missing_model=str(workdir / "no-such-model.gguf"),
        # A real model makes each token cost enough already: its cancel cases keep the suite's context.
        cancel_n_ctx=0 if model else TINY_CANCEL_N_CTX,
        # What the kit knows of its own model; a real one's vocabulary is read from its file.
        eos_prompt=None if model else successor.eos_prompt(stride=1),
        n_vocab=vocabulary_size(model) if model else successor.DEFAULT_N_VOCAB,
        # The overflow model is the kit's own tiny one, whatever the suite's model.
        overflow_model=str(overflow.write_overflow_llama(workdir / "overflow-llama.gguf", n_ctx=TINY_N_CTX)),
        overflow_prompt=overflow.overflow_prompt(),
        before_overflow_prompt=overflow.before_overflow_prompt(),
    )


def vocabulary_size(path: Path) -> int | None:
    """The number of tokens in a GGUF file's vocabulary (None if it names none)."""
    import gguf

    reader = gguf.GGUFReader(str(path))
    tokens = reader.get_field("tokenizer.ggml.tokens")
    return len(tokens.data) if tokens is not None else None


def placeholder_inputs() -> SuiteInputs:
    """The default run's values, with `<model>`, `<alt_model>`, ... and `<long_prompt>` for what a
    harness supplies."""
    from ggufsm.conformance.fixtures import successor

    return SuiteInputs(model=placeholder("model"), alt_model=placeholder("alt_model"),
                       corrupt_model=placeholder("corrupt_model"), unsupported_model=placeholder("unsupported_model"),
                       missing_model=placeholder("missing_model"), long_prompt=placeholder("long_prompt"),
                       cancel_n_ctx=TINY_CANCEL_N_CTX, eos_prompt=placeholder("eos_prompt"),
                       n_vocab=successor.DEFAULT_N_VOCAB, overflow_model=placeholder("overflow_model"),
                       overflow_prompt=placeholder("overflow_prompt"),
                       before_overflow_prompt=placeholder("before_overflow_prompt"))


def inputs_from_file(path: Path) -> SuiteInputs:
    """SuiteInputs from JSON: the file fields are required, the values optional; relative paths are
    taken from the JSON file's directory."""
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    known = {field.name for field in fields(SuiteInputs)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ValueError(f"{path}: unknown field(s) {unknown}; known: {sorted(known)}")
    base = Path(path).resolve().parent
    for name in ("model", "alt_model", "corrupt_model", "unsupported_model", "missing_model", "overflow_model"):
        if data.get(name):
            data[name] = str(base / data[name])
    return SuiteInputs(**data)
