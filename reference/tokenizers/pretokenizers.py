"""Pre-tokenizers for byte-level BPE: how text is cut into words before merging.

`tokenizer.ggml.pre` names one. Each is a list of regular expressions applied
in turn, as llama.cpp applies them (src/llama-vocab.cpp, unicode.cpp): every
expression splits each piece left by the previous one, and text that an
expression does not match stays a piece of its own. Lookaheads never see past
the end of the piece they run on.

The expressions need Unicode classes (\\p{L}, \\p{N}) that the standard `re`
module lacks, so they run on the `regex` package. GPT-2's expression (alone, or after
`\\p{N}` as the `smollm` family runs it) is also hand-written in the core
(`_core.pretokenize_gpt2`, cpp/tokenizer/pretokenize.h), as llama.cpp hand-writes it: those
names split there, and a load of such a model never imports `regex` (30-70 ms of SmolLM2's
first token in a fresh process). The expressions stay the reference: `split_reference` runs
them, and the tests hold the core to it.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ggufsm import _core
from ggufsm.spec.errors import UnsupportedModel

if TYPE_CHECKING:
    import regex

# The GPT-2 expression. llama.cpp spells it without the final `\s+` and then
# keeps unmatched text as pieces, which cuts exactly as the `\s+` branch does.
GPT2 = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"

CONTRACTIONS_ANY_CASE = r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])"
LLAMA3 = (CONTRACTIONS_ANY_CASE
          + r"|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")
QWEN2 = (CONTRACTIONS_ANY_CASE
         + r"|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")


@dataclass(frozen=True)
class PreTokenizer:
    """A named sequence of splitting expressions and the flags llama.cpp ties to the name."""

    name: str
    expressions: tuple[str, ...]
    # A word already in the vocabulary is one token, without running the merges.
    ignore_merges: bool = False
    # Default for tokenizer.ggml.add_bos_token when the file does not say.
    add_bos_default: bool = False

    @functools.cached_property
    def _compiled(self) -> tuple[regex.Pattern, ...]:
        # Imported and compiled on first use: a load builds one pre-tokenizer, and compiling every name's
        # expressions when this module was imported was part of every BPE model's load.
        import regex
        return tuple(regex.compile(e) for e in self.expressions)

    @property
    def runs_in_core(self) -> bool:
        """The core splits as these expressions do (GPT-2's, alone or after `\\p{N}`)."""
        return self.expressions in CORE_GPT2

    def split(self, text: str) -> list[str]:
        """Cut text into words; the words concatenate back to text."""
        if self.runs_in_core:
            return _core.pretokenize_gpt2(text, CORE_GPT2[self.expressions])
        return self.split_reference(text)

    def split_reference(self, text: str) -> list[str]:
        """`split` by the expressions themselves, on the `regex` package: the reference for the core."""
        pieces = [text] if text else []
        for pattern in self._compiled:
            pieces = [word for piece in pieces for word in _split_keeping_gaps(pattern, piece)]
        return pieces


def _split_keeping_gaps(pattern: regex.Pattern, piece: str) -> list[str]:
    words, end = [], 0
    for match in pattern.finditer(piece):
        start, stop = match.span()
        if start == stop:
            continue
        if start > end:
            words.append(piece[end:start])
        words.append(piece[start:stop])
        end = stop
    if end < len(piece):
        words.append(piece[end:])
    return words


_DEFINITIONS = [
    # (names as llama.cpp spells them in tokenizer.ggml.pre, expressions, flags)
    (("smollm", "starcoder", "refact", "command-r", "codeshell", "exaone", "minerva-7b"), (r"\p{N}", GPT2), {}),
    (("gpt-2", "gpt2", "phi-2", "mpt", "olmo", "jais", "exaone4"), (GPT2,), {}),
    (("llama3", "llama-v3", "llama-bpe", "falcon3", "pixtral", "dbrx", "smaug-bpe"), (LLAMA3,),
     {"ignore_merges": True, "add_bos_default": True}),
    (("qwen2", "deepseek-r1-qwen", "stablelm2", "megrez"), (QWEN2,), {}),
    (("default",), (r"[\p{P}\$\+<=>\^~\|]+", GPT2, r"\p{N}+", r"[0-9][0-9][0-9]"), {}),
]

# The expression lists the core splits as (`_core.pretokenize_gpt2`), and its split_digits for each.
CORE_GPT2 = {(GPT2,): False, (r"\p{N}", GPT2): True}

PRETOKENIZERS: dict[str, PreTokenizer] = {
    name: PreTokenizer(name, expressions, **flags)
    for names, expressions, flags in _DEFINITIONS
    for name in names
}


def pretokenizer_for(name: str | None) -> PreTokenizer:
    """The pre-tokenizer `tokenizer.ggml.pre` names; a missing name means llama.cpp's `default`."""
    key = name or "default"
    try:
        return PRETOKENIZERS[key]
    except KeyError:
        known = ", ".join(sorted(PRETOKENIZERS))
        raise UnsupportedModel(f"tokenizer.ggml.pre = {key!r} is not a supported pre-tokenizer (supported: {known})") from None
