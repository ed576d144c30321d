"""Tiny synthetic vocabularies, small enough to reason about by hand."""

from __future__ import annotations

from ggufsm.reference.tokenizers.bpe import BYTE_TO_CHAR

# Token types as gguf.TokenType numbers them.
NORMAL, UNKNOWN, CONTROL, USER_DEFINED, UNUSED, BYTE = 1, 2, 3, 4, 5, 6


def bpe_metadata(*, merges=("h e", "l l", "he ll", "hell o", "Ġ w", "Ġw o", "o r", "Ġwo r", "Ġwor l", "Ġworl d"),
                 pre="smollm", add_bos=None, add_eos=None) -> dict:
    """A byte-level BPE vocabulary small enough to reason about: every byte is a token,
    the merges' results are tokens, plus three specials."""
    tokens = ["<s>", "</s>", "<|end|>", "<tag>"]
    types = [CONTROL, CONTROL, CONTROL, USER_DEFINED]
    tokens += BYTE_TO_CHAR
    types += [NORMAL] * 256
    for merge in merges:
        merged = merge.replace(" ", "")
        if merged not in tokens:
            tokens.append(merged)
            types.append(NORMAL)
    metadata = {
        "tokenizer.ggml.model": "gpt2", "tokenizer.ggml.pre": pre,
        "tokenizer.ggml.tokens": tokens, "tokenizer.ggml.token_type": types,
        "tokenizer.ggml.merges": list(merges),
        "tokenizer.ggml.bos_token_id": 0, "tokenizer.ggml.eos_token_id": 1,
    }
    if add_bos is not None:
        metadata["tokenizer.ggml.add_bos_token"] = add_bos
    if add_eos is not None:
        metadata["tokenizer.ggml.add_eos_token"] = add_eos
    return metadata


def spm_metadata(pieces: dict[str, float] | None = None, *, add_space_prefix=False) -> dict:
    """A SentencePiece vocabulary: <unk> <s> </s>, 256 byte tokens, then scored pieces."""
    if pieces is None:
        pieces = {"▁": -1.0, "a": -2.0, "b": -2.0, "ab": -3.0, "ba": -1.5, "▁a": -2.5, "abab": -0.5, "<x>": 0.0}
    tokens = ["<unk>", "<s>", "</s>", *(f"<0x{b:02X}>" for b in range(256)), *pieces]
    types = [UNKNOWN, CONTROL, CONTROL, *[BYTE] * 256, *(USER_DEFINED if p == "<x>" else NORMAL for p in pieces)]
    scores = [0.0, 0.0, 0.0, *[0.0] * 256, *pieces.values()]
    return {
        "tokenizer.ggml.model": "llama", "tokenizer.ggml.tokens": tokens, "tokenizer.ggml.token_type": types,
        "tokenizer.ggml.scores": scores, "tokenizer.ggml.bos_token_id": 1, "tokenizer.ggml.eos_token_id": 2,
        "tokenizer.ggml.unknown_token_id": 0, "tokenizer.ggml.add_space_prefix": add_space_prefix,
    }
