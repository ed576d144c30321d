"""Suite inputs made of toy model files (the toy runtime's own format)."""

from __future__ import annotations

from pathlib import Path

from toy_runtime import EOS, VOCAB, greedy_token, write_toy_model

from ggufsm.conformance.plan.recipes import SuiteInputs

EOS_WITHIN = 8
OVERFLOW_SEED = 3


def eos_prompt(model_seed: int, within: int = EOS_WITHIN) -> list[int]:
    """A one-token prompt whose greedy continuation on the toy model reaches EOS within `within` tokens."""
    for first in range(1, VOCAB):
        tokens = [first]
        for _ in range(within):
            token = greedy_token(model_seed, tokens, len(tokens))
            tokens.append(token)
            if token == EOS:
                return [first]
    raise AssertionError(f"no one-token prompt of the toy model {model_seed} reaches EOS within {within} tokens")


def overflow_token() -> int:
    """The token the overflow toy model's greedy generate reaches from the one-token prompt [1]."""
    return greedy_token(OVERFLOW_SEED, [1], 1)


def toy_suite_inputs(directory: Path) -> SuiteInputs:
    (directory / "corrupt.gguf").write_text("this is not a model")
    return SuiteInputs(
        model=str(write_toy_model(directory / "model.gguf", seed=1)),
        alt_model=str(write_toy_model(directory / "alt.gguf", seed=2)),
        corrupt_model=str(directory / "corrupt.gguf"),
        unsupported_model=str(write_toy_model(directory / "unsupported.gguf", arch="mamba9")),
        missing_model=str(directory / "missing.gguf"),
        n_ctx=64,
        long_generation=40,
        eos_prompt=eos_prompt(1),
        eos_within=EOS_WITHIN,
        n_vocab=VOCAB,
        overflow_model=str(write_toy_model(directory / "overflow.gguf", seed=OVERFLOW_SEED,
                                           overflow_after=overflow_token())),
        overflow_prompt=[overflow_token()],
        before_overflow_prompt=[1],
    )
